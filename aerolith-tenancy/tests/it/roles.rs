use aerolith_tenancy::{
    allows, Forbidden, KeyId, Permission, Principal, Role, Suspended, SuspensionReason, TenantId,
    TenantStatus,
};

/// The expected table, written out independently of `allows`. Columns in the
/// order of `Permission::ALL`:
/// read, write, query, collections, indexes, keys, usage, subscription,
/// read invoices, pay invoices, audit, update tenant, delete tenant, admin tenants.
const EXPECTED: [(Role, [bool; 14]); 4] = [
    (
        Role::Owner,
        [
            true, true, true, true, true, true, true, true, true, true, true, true, true, false,
        ],
    ),
    (
        Role::Admin,
        [
            true, true, true, true, true, true, true, false, true, true, true, true, false, false,
        ],
    ),
    (
        Role::Writer,
        [
            true, true, true, true, true, false, true, false, false, false, false, false, false,
            false,
        ],
    ),
    (
        Role::Reader,
        [
            true, false, true, false, false, false, true, false, false, false, false, false, false,
            false,
        ],
    ),
];

#[test]
fn permission_list_is_in_the_documented_order() {
    use Permission as P;
    assert_eq!(
        Permission::ALL,
        [
            P::ReadDocuments,
            P::WriteDocuments,
            P::Query,
            P::ManageCollections,
            P::ManageIndexes,
            P::ManageKeys,
            P::ReadUsage,
            P::ManageSubscription,
            P::ReadInvoices,
            P::PayInvoices,
            P::ReadAudit,
            P::UpdateTenant,
            P::DeleteTenant,
            P::AdminTenants,
        ]
    );
}

#[test]
fn role_permission_table_matches_the_expected_matrix_exactly() {
    assert_eq!(EXPECTED.map(|(role, _)| role), Role::ALL);
    for (role, row) in EXPECTED {
        for (permission, expected) in Permission::ALL.into_iter().zip(row) {
            assert_eq!(allows(role, permission), expected, "{role} x {permission}");
        }
    }
}

#[test]
fn principal_authorization_follows_the_table_on_its_own_tenant() {
    let tenant = TenantId::new(7);
    for (role, row) in EXPECTED {
        let principal = Principal::Tenant {
            tenant,
            role,
            key_id: KeyId::from_u128(1),
        };
        for (permission, expected) in Permission::ALL.into_iter().zip(row) {
            let result = principal.authorize(tenant, permission);
            if expected {
                assert_eq!(result, Ok(()), "{role} x {permission}");
            } else {
                assert_eq!(
                    result,
                    Err(Forbidden::new(permission)),
                    "{role} x {permission}"
                );
            }
        }
    }
}

#[test]
fn no_role_may_act_on_another_tenant() {
    for role in Role::ALL {
        let principal = Principal::Tenant {
            tenant: TenantId::new(1),
            role,
            key_id: KeyId::from_u128(1),
        };
        for permission in Permission::ALL {
            assert_eq!(
                principal.authorize(TenantId::new(2), permission),
                Err(Forbidden::new(permission))
            );
        }
    }
}

#[test]
fn operator_may_do_everything_on_every_tenant() {
    for permission in Permission::ALL {
        assert_eq!(
            Principal::Operator.authorize(TenantId::new(99), permission),
            Ok(())
        );
        assert_eq!(Principal::Operator.authorize_global(permission), Ok(()));
    }
}

#[test]
fn tenant_principals_cannot_pass_global_checks() {
    let owner = Principal::Tenant {
        tenant: TenantId::new(1),
        role: Role::Owner,
        key_id: KeyId::from_u128(1),
    };
    assert_eq!(
        owner.authorize_global(Permission::AdminTenants),
        Err(Forbidden::new(Permission::AdminTenants))
    );
}

#[test]
fn key_grants_cannot_escalate_privileges() {
    let tenant = TenantId::new(3);
    let with_role = |role| Principal::Tenant {
        tenant,
        role,
        key_id: KeyId::from_u128(1),
    };
    let refused = Err(Forbidden::new(Permission::ManageKeys));
    assert_eq!(
        with_role(Role::Owner).authorize_grant(tenant, Role::Owner),
        Ok(())
    );
    assert_eq!(
        with_role(Role::Admin).authorize_grant(tenant, Role::Admin),
        Ok(())
    );
    assert_eq!(
        with_role(Role::Admin).authorize_grant(tenant, Role::Reader),
        Ok(())
    );
    assert_eq!(
        with_role(Role::Admin).authorize_grant(tenant, Role::Owner),
        refused
    );
    assert_eq!(
        with_role(Role::Writer).authorize_grant(tenant, Role::Reader),
        refused
    );
    assert_eq!(
        with_role(Role::Reader).authorize_grant(tenant, Role::Reader),
        refused
    );
    assert_eq!(
        with_role(Role::Owner).authorize_grant(TenantId::new(4), Role::Reader),
        refused
    );
    assert_eq!(
        Principal::Operator.authorize_grant(tenant, Role::Owner),
        Ok(())
    );
}

#[test]
fn suspended_tenant_can_read_but_not_write() {
    use Permission as P;
    let tenant = TenantId::new(5);
    let blocked = [P::WriteDocuments, P::ManageCollections, P::ManageIndexes];
    let suspended = TenantStatus::Suspended {
        reason: SuspensionReason::NonPayment,
    };
    for permission in Permission::ALL {
        assert_eq!(TenantStatus::Active.check(tenant, permission), Ok(()));
        let result = suspended.check(tenant, permission);
        if blocked.contains(&permission) {
            match result {
                Err(Suspended {
                    tenant: t,
                    permission: p,
                    reason,
                    ..
                }) => {
                    assert_eq!(
                        (t, p, reason),
                        (tenant, permission, SuspensionReason::NonPayment)
                    );
                }
                other => panic!("{permission}: expected Suspended, got {other:?}"),
            }
        } else {
            assert_eq!(result, Ok(()), "{permission}");
        }
    }
}

#[test]
fn tenant_status_has_a_stable_json_form() {
    let status = TenantStatus::Suspended {
        reason: SuspensionReason::Operator,
    };
    let json = serde_json::to_string(&status).expect("serializes");
    assert_eq!(json, r#"{"status":"suspended","reason":"operator"}"#);
    assert_eq!(
        serde_json::from_str::<TenantStatus>(&json).expect("parses"),
        status
    );
}

#[test]
fn roles_and_principals_round_trip_through_json() {
    let principal = Principal::Tenant {
        tenant: TenantId::new(9),
        role: Role::Writer,
        key_id: KeyId::from_u128(77),
    };
    let json = serde_json::to_string(&principal).expect("serializes");
    assert_eq!(
        serde_json::from_str::<Principal>(&json).expect("parses"),
        principal
    );
    assert_eq!(
        serde_json::to_string(&Role::Owner).expect("serializes"),
        "\"owner\""
    );
}
