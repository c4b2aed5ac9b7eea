//! Who may do what: [`Role`], [`Principal`], [`Permission`] and the one table
//! that maps them, [`allows`].
//!
//! Every operation of the product names exactly one [`Permission`]; callers
//! check it with [`Principal::authorize`] before touching data. The operator
//! (the holder of the admin key) is above tenants and may do everything; a
//! tenant principal may act only on its own tenant, within its role.
//! Suspension is a separate check on the tenant's [`TenantStatus`]: a
//! suspended tenant is read-only ([`Permission::allowed_while_suspended`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Forbidden, Suspended};
use crate::ids::{KeyId, TenantId};

/// A tenant-level role, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything on the tenant, including plan changes and deleting it.
    Owner,
    /// Everything except plan changes and deleting the tenant.
    Admin,
    /// Reads and writes data, manages collections and indexes.
    Writer,
    /// Reads and queries data.
    Reader,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Writer, Role::Reader];

    /// Stable one-byte code used in token payloads and audit hashes.
    pub const fn code(self) -> u8 {
        match self {
            Role::Owner => 1,
            Role::Admin => 2,
            Role::Writer => 3,
            Role::Reader => 4,
        }
    }

    /// Inverse of [`Role::code`]; `None` for an unknown code.
    pub const fn from_code(code: u8) -> Option<Role> {
        match code {
            1 => Some(Role::Owner),
            2 => Some(Role::Admin),
            3 => Some(Role::Writer),
            4 => Some(Role::Reader),
            _ => None,
        }
    }

    /// Whether a principal with this role may create a key (or grant a role)
    /// `granted`. Only owners can mint owners; an admin can mint up to admin;
    /// nobody below admin manages keys at all. This stops an admin from
    /// escalating to owner through a key it created itself.
    pub const fn may_grant(self, granted: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(granted, Role::Owner),
            Role::Writer | Role::Reader => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
        })
    }
}

/// One operation class of the product. Each public operation checks exactly
/// one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read documents by id, list documents.
    ReadDocuments,
    /// Insert, update, delete documents.
    WriteDocuments,
    /// Run queries and counts.
    Query,
    /// Create, rename and drop collections.
    ManageCollections,
    /// Create and drop secondary indexes.
    ManageIndexes,
    /// Create, list and revoke API keys (and so assign roles).
    ManageKeys,
    /// Read the tenant's usage.
    ReadUsage,
    /// Change the plan or cancel the subscription.
    ManageSubscription,
    /// List and read invoices.
    ReadInvoices,
    /// Pay invoices.
    PayInvoices,
    /// Read the tenant's audit log.
    ReadAudit,
    /// Change the tenant's display name and settings.
    UpdateTenant,
    /// Delete the tenant and all its data.
    DeleteTenant,
    /// Create, list, suspend and resume any tenant (operator only).
    AdminTenants,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: [Permission; 14] = [
        Permission::ReadDocuments,
        Permission::WriteDocuments,
        Permission::Query,
        Permission::ManageCollections,
        Permission::ManageIndexes,
        Permission::ManageKeys,
        Permission::ReadUsage,
        Permission::ManageSubscription,
        Permission::ReadInvoices,
        Permission::PayInvoices,
        Permission::ReadAudit,
        Permission::UpdateTenant,
        Permission::DeleteTenant,
        Permission::AdminTenants,
    ];

    /// Whether a suspended (read-only) tenant may still do this. Suspension
    /// stops growth of data, not the ways out of suspension: reading,
    /// paying, changing plan, revoking a leaked key and deleting stay open.
    pub const fn allowed_while_suspended(self) -> bool {
        !matches!(
            self,
            Permission::WriteDocuments | Permission::ManageCollections | Permission::ManageIndexes
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::ReadDocuments => "read_documents",
            Permission::WriteDocuments => "write_documents",
            Permission::Query => "query",
            Permission::ManageCollections => "manage_collections",
            Permission::ManageIndexes => "manage_indexes",
            Permission::ManageKeys => "manage_keys",
            Permission::ReadUsage => "read_usage",
            Permission::ManageSubscription => "manage_subscription",
            Permission::ReadInvoices => "read_invoices",
            Permission::PayInvoices => "pay_invoices",
            Permission::ReadAudit => "read_audit",
            Permission::UpdateTenant => "update_tenant",
            Permission::DeleteTenant => "delete_tenant",
            Permission::AdminTenants => "admin_tenants",
        })
    }
}

/// The role x permission table. This function is the only place the mapping
/// is written down.
pub const fn allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match permission {
        P::ReadDocuments | P::Query | P::ReadUsage => true,
        P::WriteDocuments | P::ManageCollections | P::ManageIndexes => {
            matches!(role, Role::Owner | Role::Admin | Role::Writer)
        }
        P::ManageKeys | P::ReadInvoices | P::PayInvoices | P::ReadAudit | P::UpdateTenant => {
            matches!(role, Role::Owner | Role::Admin)
        }
        P::ManageSubscription | P::DeleteTenant => matches!(role, Role::Owner),
        // Tenant roles never administer other tenants; only the operator does.
        P::AdminTenants => false,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Principal {
    /// The operator of the deployment (admin key): every permission on every
    /// tenant.
    Operator,
    /// A caller acting for one tenant through one API key (or a session token
    /// derived from it).
    Tenant {
        /// The tenant the key belongs to.
        tenant: TenantId,
        /// The key's role.
        role: Role,
        /// The key used.
        key_id: KeyId,
    },
}

impl Principal {
    /// Checks that this principal may perform `permission` on `tenant`.
    ///
    /// A tenant principal addressing another tenant is refused with the same
    /// error as a missing permission, so the answer reveals nothing about the
    /// other tenant.
    pub fn authorize(&self, tenant: TenantId, permission: Permission) -> Result<(), Forbidden> {
        match *self {
            Principal::Operator => Ok(()),
            Principal::Tenant {
                tenant: own, role, ..
            } if own == tenant && allows(role, permission) => Ok(()),
            Principal::Tenant { .. } => Err(Forbidden { permission }),
        }
    }

    /// Checks that this principal may create a key with role `granted` on
    /// `tenant`: it needs [`Permission::ManageKeys`] there and
    /// [`Role::may_grant`] (the operator may grant anything).
    pub fn authorize_grant(&self, tenant: TenantId, granted: Role) -> Result<(), Forbidden> {
        self.authorize(tenant, Permission::ManageKeys)?;
        match *self {
            Principal::Tenant { role, .. } if !role.may_grant(granted) => Err(Forbidden {
                permission: Permission::ManageKeys,
            }),
            _ => Ok(()),
        }
    }

    /// Checks an operation that is not about one tenant (such as listing all
    /// tenants): only [`Principal::Operator`] passes.
    pub fn authorize_global(&self, permission: Permission) -> Result<(), Forbidden> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant { .. } => Err(Forbidden { permission }),
        }
    }

    /// The tenant this principal is bound to; `None` for the operator.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Principal::Operator => None,
            Principal::Tenant { tenant, .. } => Some(*tenant),
        }
    }
}

/// Why a tenant was suspended. The server maps [`SuspensionReason::NonPayment`]
/// to "payment required" and the others to "forbidden".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SuspensionReason {
    /// Dunning ran out: an invoice stayed unpaid past the grace period.
    NonPayment,
    /// The operator suspended the tenant (abuse, investigation).
    Operator,
    /// The tenant asked to be suspended.
    Requested,
}

impl fmt::Display for SuspensionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SuspensionReason::NonPayment => "non-payment",
            SuspensionReason::Operator => "operator action",
            SuspensionReason::Requested => "requested by the tenant",
        })
    }
}

/// Whether a tenant may change data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[non_exhaustive]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Read-only: see [`Permission::allowed_while_suspended`].
    Suspended {
        /// Why.
        reason: SuspensionReason,
    },
}

impl TenantStatus {
    /// Checks `permission` against this status: a suspended tenant is
    /// read-only ([`Permission::allowed_while_suspended`]).
    pub fn check(self, tenant: TenantId, permission: Permission) -> Result<(), Suspended> {
        match self {
            TenantStatus::Suspended { reason } if !permission.allowed_while_suspended() => {
                Err(Suspended {
                    tenant,
                    permission,
                    reason,
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_codes_round_trip_and_unknown_codes_are_none() {
        for role in Role::ALL {
            assert_eq!(Role::from_code(role.code()), Some(role));
        }
        assert_eq!(Role::from_code(0), None);
        assert_eq!(Role::from_code(5), None);
    }

    #[test]
    fn admin_cannot_mint_an_owner() {
        assert!(Role::Owner.may_grant(Role::Owner));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(Role::Admin.may_grant(Role::Admin));
        assert!(!Role::Writer.may_grant(Role::Reader));
    }
}
