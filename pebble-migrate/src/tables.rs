//! Table names created and dropped by migration SQL, for the health check's
//! expected tables. A tokenizer just good enough to skip comments and
//! string literals, not a SQL parser: callers with unusual DDL pass their
//! own list.

/// `(true, name)` per `CREATE TABLE`, `(false, name)` per `DROP TABLE`, in
/// order; names unqualified, lowercased unless quoted.
pub(crate) fn table_statements(sql: &str) -> Vec<(bool, String)> {
    let words = words(sql);
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let created = match words[i].to_ascii_lowercase().as_str() {
            "create" => true,
            "drop" => false,
            _ => {
                i += 1;
                continue;
            }
        };
        let mut j = i + 1;
        // CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE
        while j < words.len()
            && matches!(
                words[j].to_ascii_lowercase().as_str(),
                "global" | "local" | "unlogged"
            )
        {
            j += 1;
        }
        let temporary = j < words.len()
            && matches!(words[j].to_ascii_lowercase().as_str(), "temp" | "temporary");
        if temporary {
            j += 1;
        }
        if j >= words.len() || !words[j].eq_ignore_ascii_case("table") {
            i += 1;
            continue;
        }
        j += 1;
        // IF [NOT] EXISTS
        while j < words.len()
            && matches!(
                words[j].to_ascii_lowercase().as_str(),
                "if" | "not" | "exists"
            )
        {
            j += 1;
        }
        if let Some(name) = words.get(j) {
            if !temporary {
                found.push((created, unqualified(name)));
            }
        }
        i = j + 1;
    }
    found
}

/// The last part of `a.b` or `"a"."b"`, folded the way PostgreSQL folds it.
fn unqualified(name: &str) -> String {
    let last = split_dotted(name).pop().unwrap_or_default();
    match last.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => last.to_ascii_lowercase(),
    }
}

fn split_dotted(name: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '.' if !quoted => parts.push(String::new()),
            _ => {
                if c == '"' {
                    quoted = !quoted;
                }
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
        }
    }
    parts
}

/// Identifiers and keywords (quoted identifiers kept with their quotes,
/// `a.b` kept whole); comments, literals and punctuation dropped.
fn words(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' || c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            let mut quoted = false;
            while i < chars.len() {
                let c = chars[i];
                if c == '"' {
                    quoted = !quoted;
                } else if !(quoted || c.is_alphanumeric() || c == '_' || c == '.' || c == '$') {
                    break;
                }
                word.push(c);
                i += 1;
            }
            words.push(word);
        } else {
            i += 1;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_created_and_dropped_tables() {
        let sql = r#"
            -- CREATE TABLE commented_out (a int);
            CREATE TABLE IF NOT EXISTS Tasks (id bigint, note text DEFAULT 'create table x');
            create unlogged table "Mixed" (a int);
            CREATE TEMP TABLE scratch (a int);
            CREATE TABLE public.qualified (a int);
            /* DROP TABLE tasks */
            DROP TABLE IF EXISTS old_stuff;
            CREATE INDEX ON tasks (id);
        "#;
        assert_eq!(
            table_statements(sql),
            [
                (true, "tasks".to_owned()),
                (true, "Mixed".to_owned()),
                (true, "qualified".to_owned()),
                (false, "old_stuff".to_owned()),
            ]
        );
    }
}
