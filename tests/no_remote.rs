//! The local tool alone (`--no-default-features`): a URL is one line and a
//! usage error, not an attempt to read a folder named `s3:`.

use crate::util::{run, stderr};

#[test]
fn a_url_without_remote_support_is_one_line_and_exit_2() {
    for args in [
        vec!["--checkpoint_dir", "s3://bucket/model", "--out_dir", "out"],
        vec!["inspect", "https://example.invalid/model"],
        vec![
            "verify",
            "--checkpoint_dir",
            "gs://bucket/model",
            "--out_dir",
            "out",
        ],
    ] {
        let words: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        let out = run(&words);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("built without remote support"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}
