//! Naming rules: which table and column names are accepted, and how field
//! and struct names become SQL and constant names.

/// PostgreSQL truncates identifiers beyond 63 bytes; a longer name would
/// silently refer to something else.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Why `name` cannot be a table or column name, if it cannot.
///
/// Names are plain lowercase identifiers (`[a-z_][a-z0-9_]*`): they are
/// always quoted in SQL, and lowercase-only keeps the quoted name equal to
/// the one hand-written SQL (which folds to lowercase) would use.
pub fn invalid_reason(name: &str) -> Option<String> {
    let Some(first) = name.chars().next() else {
        return Some("an identifier cannot be empty".into());
    };
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Some(format!(
            "`{name}` is {} bytes; PostgreSQL identifiers are at most {MAX_IDENTIFIER_BYTES}",
            name.len()
        ));
    }
    if !(first.is_ascii_lowercase() || first == '_') {
        return Some(format!(
            "`{name}` must start with a lowercase ASCII letter or `_`"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Some(format!(
            "`{name}` contains {bad:?}; use lowercase ASCII letters, digits and `_`"
        ));
    }
    None
}

/// `DocumentVersion` -> `document_version`
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `tenant_id` -> `TENANT_ID`, the name of a field's column constant.
pub fn constant_name(field: &str) -> String {
    field.trim_start_matches("r#").to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("DocumentVersion"), "document_version");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("Plan2Fee"), "plan2_fee");
    }

    #[test]
    fn identifiers() {
        assert!(invalid_reason("users").is_none());
        assert!(invalid_reason("_t1").is_none());
        assert!(invalid_reason("").is_some());
        assert!(invalid_reason("Users").is_some());
        assert!(invalid_reason("1users").is_some());
        assert!(invalid_reason("users; drop table x").is_some());
        assert!(invalid_reason("us\"ers").is_some());
        assert!(invalid_reason(&"a".repeat(64)).is_some());
        assert!(invalid_reason(&"a".repeat(63)).is_none());
    }
}
