//! `embed_migrations!` compiles a directory in, the same as reading it.

#[test]
fn embedded_equals_read_at_run_time() -> pebble_migrate::Result<()> {
    let embedded = pebble_migrate::embed_migrations!("tests/migrations")?;
    let read = pebble_migrate::Migrations::from_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/migrations"
    ))?;
    assert_eq!(embedded, read);
    let files: Vec<&str> = embedded.iter().map(|m| m.file()).collect();
    assert_eq!(files, ["0001_notes.sql", "0002_index_body.sql"]);
    assert!(embedded.get(2).is_some_and(|m| m.no_transaction()));
    assert_eq!(embedded.declared_tables(), ["notes"]);
    Ok(())
}
