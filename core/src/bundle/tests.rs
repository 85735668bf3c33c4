//! Tests of the parent module.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

#[test]
fn embedded_bundle_has_modules_and_data() {
    let b = BundleFiles::embedded().unwrap();
    assert!(b
        .modules
        .iter()
        .any(|m| m.path == "validate/pod_security/policy.rego"));
    let data = b.merged_data().unwrap();
    assert_eq!(data["validate"]["pod_security"]["enforcement"], "deny");
    assert_eq!(b.revision.len(), 16);
}

#[test]
fn data_files_mount_at_their_directory() {
    assert_eq!(mount_of("a/b/data.yaml"), vec!["a", "b"]);
    assert!(mount_of("data.json").is_empty());
}

#[test]
fn conflicting_data_names_both_files() {
    let files = vec![
        ("a/data.json".to_string(), br#"{"x": 1}"#.to_vec()),
        ("data.json".to_string(), br#"{"a": {"x": 2}}"#.to_vec()),
    ];
    let b = BundleFiles::from_files("t", files).unwrap();
    let err = b.merged_data().unwrap_err().to_string();
    assert!(err.contains("data.a.x"), "{err}");
    assert!(
        err.contains("a/data.json") && err.contains("and data.json"),
        "{err}"
    );
}

#[test]
fn revision_is_a_content_hash() {
    let one = BundleFiles::from_files("a", vec![("p.rego".into(), b"package p".to_vec())]).unwrap();
    let same =
        BundleFiles::from_files("b", vec![("p.rego".into(), b"package p".to_vec())]).unwrap();
    let other =
        BundleFiles::from_files("a", vec![("p.rego".into(), b"package q".to_vec())]).unwrap();
    assert_eq!(one.revision, same.revision);
    assert_ne!(one.revision, other.revision);
}

#[test]
fn bad_data_is_reported_with_position() {
    let err = parse_data("x/data.yaml", "a: [1, 2\nb: 3\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x/data.yaml:"), "{err}");
    let err = parse_data("x/data.json", "{\"a\": }")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x/data.json:1:"), "{err}");
    let err = parse_data("x/data.yaml", "- 1\n- 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("must hold an object"), "{err}");
}

#[test]
fn yaml_bomb_is_refused() {
    let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n\
                b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n\
                c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n\
                d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
                e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n\
                f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
                g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
                h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n\
                i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let err = parse_data("bomb/data.yaml", bomb).unwrap_err().to_string();
    assert!(err.contains("bomb/data.yaml"), "{err}");
}

#[test]
fn oversized_files_and_archives_that_climb_out_are_refused() {
    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    let err = BundleFiles::from_files("t", vec![("big.rego".into(), big)]).unwrap_err();
    assert!(
        matches!(&err, BundleError::TooLarge { path, .. } if path == "big.rego"),
        "{err}"
    );
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let text = b"package validate.x";
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    // `set_path` refuses `..`; write the name the way a hostile archive would.
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.reg");
    header.set_cksum();
    builder.append(&header, &text[..]).unwrap();
    let gz = builder.into_inner().unwrap().finish().unwrap();
    let err = unpack_archive("cm/b.tar.gz", &gz).unwrap_err().to_string();
    assert!(err.contains("climbs out of the bundle"), "{err}");
}

#[test]
fn non_utf8_file_is_named() {
    let err = BundleFiles::from_files("t", vec![("p.rego".into(), vec![0xff, 0xfe])]).unwrap_err();
    assert_eq!(err.to_string(), "p.rego: not UTF-8 text");
}

#[test]
fn directory_skips_hidden_entries_and_follows_links() {
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("..2026_11_21");
    std::fs::create_dir(&ts).unwrap();
    std::fs::write(ts.join("p.rego"), "package validate.p\n").unwrap();
    std::os::unix::fs::symlink("..2026_11_21", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/p.rego", dir.path().join("p.rego")).unwrap();
    let b = BundleFiles::from_dir(dir.path()).unwrap();
    assert_eq!(b.modules.len(), 1);
    assert_eq!(b.modules[0].path, "p.rego");
}
