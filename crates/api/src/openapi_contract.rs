//! What the route annotations do not say, added to the OpenAPI document in one place: the error
//! answers every operation can give, binary bodies as binary, the tus, range and conditional
//! headers, and the name and path constraints the server enforces. Kept beside the router so a
//! generated client (openapi-typescript, schemathesis) sees the API the server runs.

use serde_json::{json, Map, Value};

/// A volume or tenant name: 1–63 of `a-z 0-9 . _ -`, starting with a letter or digit.
const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,62}$";
/// A path inside a volume: absolute, names of at most 255 bytes, no `..` name and no NUL.
/// (Written without look-ahead so that every regex engine, and every generator, can read it.)
const PATH_PATTERN: &str =
    r"^(/([^/\u0000.][^/\u0000]{0,254}|\.([^/\u0000.][^/\u0000]{0,253}|\.[^/\u0000]{1,253})?)?)+$";
/// A label key: 1–63 of letters, digits, `. _ - /`, starting with a letter or digit.
const LABEL_KEY_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$";
/// A label value: at most 255 characters, none a control character.
const LABEL_VALUE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]{0,255}$";
/// A label selector `key=value`.
const LABEL_SELECTOR_PATTERN: &str =
    r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}=[^\u0000-\u001f\u007f-\u009f]{0,255}$";

/// A path that names something below the root (the operations that never act on `/`).
const NON_ROOT_PATH_PATTERN: &str = r"^(/([^/\u0000.][^/\u0000]{0,254}|\.([^/\u0000.][^/\u0000]{0,253}|\.[^/\u0000]{1,253})?)?)*/([^/\u0000.][^/\u0000]{0,254}|\.([^/\u0000.][^/\u0000]{0,253}|\.[^/\u0000]{1,253}))(/([^/\u0000.][^/\u0000]{0,254}|\.([^/\u0000.][^/\u0000]{0,253}|\.[^/\u0000]{1,253})?)?)*$";
/// A size string (`nullspace_core::parse_size`) of 1 byte to 2^63-1 bytes.
const SIZE_PATTERN: &str =
    "^([1-9][0-9]{0,17} ?B?|[1-9][0-9]{0,5} ?(KiB|MiB|GiB|TiB|KB|MB|GB|TB))$";

/// `^(a|b)(,(a|b))*$`: a comma-separated selection of `fields` (empty: all).
fn fields_pattern(fields: &[&str]) -> String {
    let one = format!("({})", fields.join("|"));
    format!("^({one}(,{one})*)?$")
}

/// The longest path in bytes (`nullspace_core::path::MAX_PATH_BYTES`).
const MAX_PATH: u64 = nullspace_core::path::MAX_PATH_BYTES as u64;

/// The content types whose bodies are bytes, not JSON.
const BINARY_TYPES: [&str; 4] = [
    "application/octet-stream",
    "application/offset+octet-stream",
    "application/x-tar",
    "application/gzip",
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn header_param(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "header", "required": required,
           "description": description, "schema": schema})
}

fn tus_resumable() -> Value {
    header_param(
        "Tus-Resumable",
        "The tus version the client speaks: 1.0.0",
        json!({"type": "string", "enum": ["1.0.0"]}),
        true,
    )
}

fn offset_param(required: bool) -> Value {
    header_param(
        "Upload-Offset",
        "Where this chunk starts: the upload's current offset",
        json!({"type": "integer", "minimum": 0}),
        required,
    )
}

fn checksum_param() -> Value {
    header_param(
        "Upload-Checksum",
        "`sha1 BASE64` or `sha256 BASE64` of this chunk (tus checksum extension)",
        json!({"type": "string"}),
        false,
    )
}

/// The header parameters of an operation, by operation id.
fn headers_of(operation_id: &str) -> Vec<Value> {
    let etag_list = json!({"type": "string"});
    match operation_id {
        "read_file" | "signed_get" => vec![
            header_param(
                "Range",
                "One byte range, `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` (206); \
                 END before START is `400`",
                json!({"type": "string",
                       "pattern": r"^\s*(bytes=\s*([0-9]+\s*-\s*[0-9]*|-\s*[0-9]+)\s*)?$"}),
                false,
            ),
            header_param(
                "If-None-Match",
                "`*` or entity tags: `304 Not Modified` when one matches the file's etag",
                etag_list,
                false,
            ),
        ],
        "write_file" => vec![
            header_param(
                "If-Match",
                "One entity tag (write only if the file still has it) or `*` (only if a file \
                 exists); a failed condition is `409 conflict`",
                etag_list.clone(),
                false,
            ),
            header_param(
                "If-None-Match",
                "`*`: write only if no file exists (`409 already_exists` otherwise)",
                json!({"type": "string", "enum": ["*"]}),
                false,
            ),
        ],
        "create_upload" => vec![
            tus_resumable(),
            header_param(
                "Upload-Length",
                "The upload's total length in bytes (deferred length is not supported)",
                json!({"type": "integer", "minimum": 0}),
                true,
            ),
            header_param(
                "Upload-Metadata",
                "Comma-separated `key base64(value)` pairs; `path` (or `filename`) names the \
                 destination",
                json!({"type": "string"}),
                true,
            ),
            checksum_param(),
        ],
        "append_upload" => vec![tus_resumable(), offset_param(true), checksum_param()],
        "upload_offset" | "terminate_upload" => vec![tus_resumable()],
        _ => Vec::new(),
    }
}

/// The response headers of an operation's success, by operation id.
fn response_headers_of(operation_id: &str) -> Option<(&'static str, Value)> {
    let s = json!({"schema": {"type": "string"}});
    let n = json!({"schema": {"type": "integer", "minimum": 0}});
    let h = match operation_id {
        "create_upload" => (
            "201",
            json!({"Location": s, "Upload-Offset": n, "Upload-Expires": s, "Tus-Resumable": s}),
        ),
        "append_upload" => (
            "204",
            json!({"Upload-Offset": n, "Upload-Expires": s, "Tus-Resumable": s}),
        ),
        "upload_offset" => (
            "200",
            json!({"Upload-Offset": n, "Upload-Length": n, "Upload-Metadata": s, "Upload-Expires": s, "Tus-Resumable": s}),
        ),
        "tus_discovery" | "tus_upload_discovery" => (
            "204",
            json!({"Tus-Resumable": s, "Tus-Version": s, "Tus-Extension": s, "Tus-Checksum-Algorithm": s}),
        ),
        "read_file" | "signed_get" => (
            "200",
            json!({"ETag": s, "Accept-Ranges": s, "Content-Length": n}),
        ),
        _ => return None,
    };
    Some(h)
}

/// The bounds of request-body fields the server checks, by schema and property.
fn body_constraints(schema: &str, property: &str) -> Option<Value> {
    let path = json!({"pattern": PATH_PATTERN, "maxLength": MAX_PATH});
    let name = json!({"pattern": NAME_PATTERN});
    let c = match (schema, property) {
        ("CreateVolume" | "CreateTenant", "name") | ("CreateKey", "tenant") => name,
        ("RenameVolume", "new_name") => name,
        ("VolumeMount", "volume") => name,
        ("CopyRequest" | "MoveRequest", "src" | "dst") | ("EditRequest", "path") => {
            json!({"pattern": NON_ROOT_PATH_PATTERN, "maxLength": MAX_PATH})
        }
        ("MkdirRequest" | "SearchRequest" | "ReplaceRequest" | "SignRequest", "path")
        | ("CreateToken", "path")
        | ("VolumeMount", "mount_path") => path,
        ("CreateKey", "expires_in") => json!({"minimum": 1, "maximum": 315_360_000}),
        ("CreateToken" | "SignRequest", "expires_in") => json!({"minimum": 1, "maximum": 604_800}),
        ("SetVolumeCap", "cap_bytes") => json!({"minimum": 1, "maximum": i64::MAX}),
        ("SetTenantLimits", "max_cpu") => json!({"minimum": 0.01, "maximum": 1024}),
        ("SetTenantLimits", "max_keys" | "max_sandboxes" | "max_volumes") => {
            json!({"minimum": 1, "maximum": i64::MAX})
        }
        ("EditRequest", "count") => json!({"minimum": 1}),
        ("SignRequest", "method") => json!({"pattern": "^([Gg][Ee][Tt]|[Pp][Uu][Tt])$"}),
        ("EditRequest", "old") => json!({"minLength": 1}),
        ("CreateKey", "name") => json!({"pattern": r"^[^\u0000-\u001f\u007f-\u009f]{1,100}$"}),
        _ => return None,
    };
    Some(c)
}

/// Completes `doc` (the annotated document, as JSON) in place.
pub(crate) fn complete(doc: &mut Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        if let Some(variants) = schemas
            .get_mut("SizeValue")
            .and_then(|s| s.get_mut("oneOf"))
            .and_then(Value::as_array_mut)
        {
            for v in variants {
                match v.get("type").and_then(Value::as_str) {
                    Some("integer") => {
                        v["minimum"] = 1.into();
                        v["maximum"] = i64::MAX.into();
                    }
                    Some("string") => v["pattern"] = SIZE_PATTERN.into(),
                    _ => {}
                }
            }
        }
        // A volume with `?fields=` carries only the fields asked for: none is required.
        if let Some(mut v) = schemas.get("Volume").cloned() {
            if let Some(o) = v.as_object_mut() {
                o.remove("required");
                o.insert(
                    "description".into(),
                    "A volume with the fields selected by `?fields=` (all when absent).".into(),
                );
            }
            schemas.insert("VolumeFields".into(), v);
        }
        for (name, schema) in schemas.iter_mut() {
            let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
                continue;
            };
            for (prop, ps) in props.iter_mut() {
                let Some(ps) = ps.as_object_mut() else {
                    continue;
                };
                if let Some(c) = body_constraints(name, prop) {
                    ps.extend(c.as_object().cloned().unwrap_or_default());
                }
                unsigned(ps);
            }
            if name == "CreateVolume" {
                if let Some(labels) = props.get_mut("labels").and_then(Value::as_object_mut) {
                    labels.insert(
                        "propertyNames".into(),
                        json!({"pattern": LABEL_KEY_PATTERN}),
                    );
                    labels.insert(
                        "additionalProperties".into(),
                        json!({"type": "string", "pattern": LABEL_VALUE_PATTERN}),
                    );
                    labels.insert("maxProperties".into(), nullspace_core::MAX_LABELS.into());
                }
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            complete_operation(path, method, op);
        }
    }
}

fn complete_operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let public = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));

    // Parameters: constraints on names and paths, and the header parameters.
    let params = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(params) = params.as_array_mut() {
        // tus discovery answers whatever the path names: nothing there to constrain.
        if method != "options" {
            for p in params.iter_mut() {
                constrain(&id, p);
            }
        }
        params.extend(headers_of(&id));
        if params.is_empty() {
            op.remove("parameters");
        }
    }

    // An empty batch is an empty archive: the body may be left out.
    if id == "write_batch" {
        if let Some(b) = op.get_mut("requestBody").and_then(Value::as_object_mut) {
            b.insert("required".into(), false.into());
        }
    }
    // Bodies of bytes are binary, not arrays of integers.
    if let Some(content) = op
        .get_mut("requestBody")
        .and_then(|b| b.get_mut("content"))
        .and_then(Value::as_object_mut)
    {
        binary_content(content);
    }

    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for r in responses.values_mut() {
        if let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) {
            binary_content(content);
        }
    }
    if id == "get_volume" || id == "list_volumes" {
        if let Some(ok) = responses.get_mut("200") {
            let fields = json!({"$ref": "#/components/schemas/VolumeFields"});
            let schema = if id == "get_volume" {
                fields
            } else {
                json!({"type": "object", "required": ["volumes"],
                       "properties": {"volumes": {"type": "array", "items": fields}}})
            };
            ok["content"] = json!({"application/json": {"schema": schema}});
        }
    }
    if let Some((status, headers)) = response_headers_of(&id) {
        if let Some(r) = responses.get_mut(status).and_then(Value::as_object_mut) {
            r.insert("headers".into(), headers);
        }
    }
    if method == "options" {
        return; // tus discovery answers 204 whatever is sent
    }
    if [
        "create_upload",
        "append_upload",
        "upload_offset",
        "terminate_upload",
    ]
    .contains(&id.as_str())
    {
        responses.entry("412").or_insert_with(|| {
            error_response("Tus-Resumable is missing or not 1.0.0 (tus answers 412)")
        });
        responses
            .entry("410")
            .or_insert_with(|| error_response("the upload expired"));
    }
    if id == "read_file" || id == "signed_get" {
        responses
            .entry("304")
            .or_insert_with(|| json!({"description": "not modified: If-None-Match matched"}));
        responses
            .entry("416")
            .or_insert_with(|| error_response("range not satisfiable"));
    }
    // The answers any operation can give.
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status)
            .or_insert_with(|| error_response(description));
    };
    add(
        "400",
        "invalid_argument: a malformed or out-of-range request",
    );
    add("500", "internal: a fault of the server (logged)");
    add(
        "503",
        "unavailable: the server is at its connection bound or shutting down (retryable)",
    );
    if !public {
        add(
            "401",
            "unauthenticated: no key, or an unknown or revoked one",
        );
        add(
            "403",
            "permission_denied: the key's role or scope does not allow this",
        );
        add(
            "429",
            "resource_exhausted: a tenant or server limit (retryable later)",
        );
    }
    if path.contains('{') {
        add(
            "404",
            "not_found: no such volume, sandbox, key, upload or file",
        );
    }
    if method == "put" || method == "post" || method == "patch" {
        add("413", "payload_too_large: a body or field over its bound");
    }
    if (path.starts_with("/v1/volumes/{name}/") || path.starts_with("/v1/signed/"))
        && method != "get"
        && method != "head"
    {
        add("409", "conflict, already_exists or volume_in_use");
        add("507", "quota_exceeded: the volume's cap would be passed");
    }
    if path.starts_with("/v1/sandboxes") || path == "/v1/volumes" || path == "/v1/volumes/{name}" {
        add("409", "conflict, already_exists or volume_in_use");
    }
}

/// Adds the server's constraints to a parameter's schema.
fn constrain(id: &str, p: &mut Value) {
    let (Some(name), Some(place)) = (
        p.get("name").and_then(Value::as_str).map(str::to_owned),
        p.get("in").and_then(Value::as_str).map(str::to_owned),
    ) else {
        return;
    };
    let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    unsigned(schema);
    match (place.as_str(), name.as_str()) {
        ("path", "name") | ("path", "tenant") => {
            schema.insert("pattern".into(), NAME_PATTERN.into());
        }
        ("query", "path") if ["read_file", "write_file", "remove_file"].contains(&id) => {
            schema.insert("pattern".into(), NON_ROOT_PATH_PATTERN.into());
            schema.insert("maxLength".into(), MAX_PATH.into());
        }
        ("query", "fields") => {
            let fields: Vec<&str> = if id == "list_files" {
                vec!["path", "type", "size", "mode", "mtime", "etag"]
            } else {
                nullspace_core::VolumeField::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect()
            };
            schema.insert("pattern".into(), fields_pattern(&fields).into());
        }
        ("query", "path") | ("query", "mount_path") => {
            schema.insert("pattern".into(), PATH_PATTERN.into());
            schema.insert("maxLength".into(), MAX_PATH.into());
        }
        ("query", "format") => {
            schema.insert("enum".into(), json!(["tar", "tar.gz", "zip"]));
        }
        ("query", "label") => {
            schema.insert("pattern".into(), LABEL_SELECTOR_PATTERN.into());
        }
        ("query", "limit") => {
            schema.insert("minimum".into(), 1.into());
            schema.insert("maximum".into(), 100_000.into());
        }
        _ => {}
    }
}

/// A Rust `u64` is documented by utoipa as `int64` with `minimum: 0`, but takes values up to
/// 2^64-1: say so, or a generator sends values past int64 and expects a refusal.
fn unsigned(ps: &mut Map<String, Value>) {
    let is_u64 = ps.get("format").and_then(Value::as_str) == Some("int64")
        && ps
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|m| m >= 0)
        && !ps.contains_key("maximum");
    if is_u64 {
        ps.insert("format".into(), "uint64".into());
        ps.insert("maximum".into(), u64::MAX.into());
    }
}

fn binary_content(content: &mut Map<String, Value>) {
    for (ct, media) in content.iter_mut() {
        if BINARY_TYPES.contains(&ct.as_str()) {
            if let Some(m) = media.as_object_mut() {
                m.insert(
                    "schema".into(),
                    json!({"type": "string", "format": "binary", "contentMediaType": ct}),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_pattern_is_the_resolver_s_rule() {
        let re = regex::Regex::new(PATH_PATTERN).unwrap();
        let dots = format!("/{}", ".".repeat(255));
        for ok in [
            "/", "/a", "/a/b.txt", "/.", "/./a", "/a//b", "/.hidden", "/..x", "/a/", "/...", &dots,
        ] {
            assert!(re.is_match(ok), "{ok} should match");
            assert!(nullspace_core::VolumePath::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("/{}", "x".repeat(256));
        for bad in [
            "",
            "a",
            "/..",
            "/a/../b",
            "/a/..",
            "/a\0b",
            "relative/x",
            &long,
        ] {
            assert!(!re.is_match(bad), "{bad:?} should not match");
            assert!(nullspace_core::VolumePath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_non_root_pattern_leaves_out_only_the_root() {
        let re = regex::Regex::new(NON_ROOT_PATH_PATTERN).unwrap();
        for ok in ["/a", "/./a", "//a/", "/a/b", "/.x", "/...", "/a/."] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["/", "/.", "//", "/./", "/..", "/a/..", "a"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn size_and_fields_patterns() {
        let re = regex::Regex::new(SIZE_PATTERN).unwrap();
        for ok in ["1", "512MiB", "2 GiB", "16B", "999999TiB"] {
            assert!(re.is_match(ok), "{ok}");
            let n = nullspace_core::parse_size(ok).unwrap();
            assert!(n >= 1 && n <= i64::MAX as u64, "{ok}");
        }
        for bad in ["", "0", "0MiB", "1 mib", "1.5GiB", "-1"] {
            assert!(!re.is_match(bad), "{bad}");
        }
        let re = regex::Regex::new(&fields_pattern(&["path", "type"])).unwrap();
        for ok in ["", "path", "path,type", "type,path,path"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["size", "path,", "path,size"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn the_name_pattern_is_the_name_rule() {
        let re = regex::Regex::new(NAME_PATTERN).unwrap();
        let max = "a".repeat(63);
        let over = "a".repeat(64);
        for ok in ["a", "0", "team-data", "a.b_c", &max] {
            assert!(
                re.is_match(ok) && nullspace_core::VolumeName::parse(ok).is_ok(),
                "{ok}"
            );
        }
        for bad in ["", "-a", "A", "a/b", "a b", &over] {
            assert!(
                !re.is_match(bad) && nullspace_core::VolumeName::parse(bad).is_err(),
                "{bad}"
            );
        }
    }
}
