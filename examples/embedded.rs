//! The embedded engine in one page: open a database, write documents, query
//! them through a secondary index, reopen, and read everything back.
//!
//! Run with `cargo run --example embedded`.

use aerolith::core::{Database, Durability, Options, Query, WriteBatch};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = || Options::default().durability(Durability::Always);

    {
        let db = Database::open(dir.path(), options())?;
        db.create_collection("books")?;
        db.create_index("books", "author", false)?;

        // One atomic batch: all of it or none of it.
        let mut batch = WriteBatch::new();
        for (id, title, author, year) in [
            ("b1", "The Left Hand of Darkness", "Le Guin", 1969),
            ("b2", "The Dispossessed", "Le Guin", 1974),
            ("b3", "Kindred", "Butler", 1979),
            ("b4", "Parable of the Sower", "Butler", 1993),
        ] {
            batch.insert(
                "books",
                json!({"_id": id, "title": title, "author": author, "year": year}),
            )?;
        }
        db.write(batch)?;
        db.patch(
            "books",
            "b3",
            json!({"year": 1979, "tags": ["time travel"]}),
        )?;

        let query = Query::from_json(&json!({
            "filter": {"author": "Butler", "year": {"$gte": 1970}},
            "sort": {"year": -1},
            "projection": {"title": 1}
        }))?;
        println!(
            "Butler since 1970: {}",
            serde_json::to_string(&db.find("books", &query)?)?
        );
        println!("plan: {:?}", db.explain("books", &query)?);
        db.close()?;
    }

    // Reopen: the log is replayed and the index rebuilt.
    let db = Database::open(dir.path(), options())?;
    println!(
        "after reopen, b3 = {}",
        db.get("books", "b3")?.expect("b3 was written")
    );
    let stats = db.collection_stats("books")?;
    println!(
        "books: {} documents, {} live bytes",
        stats.documents, stats.live_bytes
    );
    Ok(())
}
