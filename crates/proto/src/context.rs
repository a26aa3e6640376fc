//! Context paths: where an application is served, and the file name it
//! has in a deployment directory or repository (Tomcat's rules).

/// Paths that belong to Wharf itself on every node: the admin API, the
/// management console (and the seed's `/carbon`), the synchronizer's
/// endpoints, and tenant URLs (`/t/<tenant>/…`). No application may be
/// deployed at or below them.
pub const RESERVED_CONTEXTS: &[&str] = &["/api", "/console", "/carbon", "/_wharf", "/t"];

/// The context path for an artifact file name, following Tomcat's rules:
/// `hello.wasm` → `/hello`, `ROOT.wasm` → `/`, `shop#cart.wasm` →
/// `/shop/cart`. Segments may hold letters, digits, `-`, `_`, `.` and `~`;
/// `.` and `..` segments and anything else are refused with the reason.
pub fn context_for_file_name(file_name: &str) -> Result<String, String> {
    let stem = file_name
        .strip_suffix(".wasm")
        .ok_or_else(|| format!("{file_name:?} does not end in .wasm"))?;
    if stem == "ROOT" {
        return Ok("/".to_string());
    }
    let mut context = String::new();
    for segment in stem.split('#') {
        validate_segment(segment).map_err(|e| format!("{file_name:?}: {e}"))?;
        context.push('/');
        context.push_str(segment);
    }
    Ok(context)
}

/// The file name for a (valid) context path: the inverse of
/// [`context_for_file_name`].
pub fn file_name_for_context(context: &str) -> String {
    if context == "/" {
        return "ROOT.wasm".to_string();
    }
    format!("{}.wasm", context.trim_start_matches('/').replace('/', "#"))
}

/// Checks a context path given directly (e.g. `/shop/cart`).
pub fn validate_context(context: &str) -> Result<(), String> {
    if context == "/" {
        return Ok(());
    }
    if context.is_empty() {
        return Err("the context path is empty (use / for the root)".into());
    }
    let rest = context
        .strip_prefix('/')
        .ok_or_else(|| format!("context path {context:?} must start with '/'"))?;
    for segment in rest.split('/') {
        validate_segment(segment).map_err(|e| format!("context path {context:?}: {e}"))?;
    }
    if context.len() > 200 {
        return Err(format!("context path {context:?} is longer than 200 bytes"));
    }
    Ok(())
}

/// Checks a context path an application is to be deployed at: valid, and
/// clear of the paths Wharf reserves.
pub fn validate_deploy_context(context: &str) -> Result<(), String> {
    validate_context(context)?;
    for r in RESERVED_CONTEXTS {
        if context == *r || context.starts_with(&format!("{r}/")) {
            return Err(format!(
                "context path {context:?} is reserved: {} belong to Wharf itself",
                RESERVED_CONTEXTS.join(", ")
            ));
        }
    }
    Ok(())
}

fn validate_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("empty path segment".into());
    }
    if segment == "." || segment == ".." {
        return Err(format!("{segment:?} is not allowed as a path segment"));
    }
    if let Some(c) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(format!(
            "character {c:?} is not allowed (use letters, digits, '-', '_', '.', '~')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_like_tomcat() {
        assert_eq!(context_for_file_name("hello.wasm").unwrap(), "/hello");
        assert_eq!(context_for_file_name("ROOT.wasm").unwrap(), "/");
        assert_eq!(
            context_for_file_name("shop#cart.wasm").unwrap(),
            "/shop/cart"
        );
        assert!(context_for_file_name("a b.wasm")
            .unwrap_err()
            .contains("' '"));
        assert!(context_for_file_name("..#x.wasm").is_err());
        assert!(context_for_file_name("a##b.wasm")
            .unwrap_err()
            .contains("empty"));
        assert!(context_for_file_name("hello.war").is_err());
        assert!(validate_context("/a/../b").is_err());
        assert!(validate_context("a").is_err());
        assert!(validate_context("").unwrap_err().contains("empty"));
        validate_context("/a/b").unwrap();
    }

    #[test]
    fn file_names_round_trip() {
        for c in ["/", "/hello", "/shop/cart", "/a.b/c-d~e_f"] {
            assert_eq!(context_for_file_name(&file_name_for_context(c)).unwrap(), c);
        }
    }

    #[test]
    fn reserved_paths_are_refused() {
        for c in [
            "/api",
            "/api/v1",
            "/console",
            "/carbon",
            "/_wharf/x",
            "/t",
            "/t/a.com",
        ] {
            let e = validate_deploy_context(c).unwrap_err();
            assert!(e.contains("reserved"), "{c}: {e}");
        }
        validate_deploy_context("/apis").unwrap();
        validate_deploy_context("/tea").unwrap();
        validate_deploy_context("/").unwrap();
        assert!(validate_deploy_context("/x/../api").is_err());
    }
}
