// pebble-axum's extractor hands out confined handles only: not the plain
// `Db` under a schema layer, nor the `SchemaDb` without the tenant key the
// layer resolved (`TenantSchema<K>` is the schema handle to ask for).
use pebble_axum::FromTenant;

fn extractable<H: FromTenant>() {}

fn main() {
    extractable::<pebble::Db>();
    extractable::<pebble::RlsDb>();
    extractable::<pebble::SchemaDb>();
    extractable::<pebble::SchemaTransaction>();
    extractable::<pebble_axum::TenantSchema<String>>();
}
