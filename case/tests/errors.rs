//! Every kind of parse error, with its position and message, and each limit.

use ovlcheck_case::text::limits;
use ovlcheck_case::{parse_case, Case, Profile, RedirectDir};

#[track_caller]
fn err(text: &str, line: usize, column: usize, needle: &str) {
    match parse_case("e.ovl", text) {
        Ok(c) => panic!("parsed, expected an error: {c:?}"),
        Err(e) => {
            assert!(
                e.message.contains(needle),
                "message {:?} lacks {needle:?}",
                e.message
            );
            assert_eq!((e.line, e.column), (line, column), "{e}");
            assert_eq!(e.file, "e.ovl");
            assert!(e
                .to_string()
                .starts_with(&format!("e.ovl:{line}:{column}: ")));
        }
    }
}

#[track_caller]
fn ok(text: &str) -> Case {
    parse_case("ok.ovl", text).unwrap_or_else(|e| panic!("{e}"))
}

/// A case with `entry` as the only lower entry.
fn entry(entry: &str) -> String {
    format!("lower\n  {entry}\nops\n")
}

/// A case with `op` as the only op.
fn op(op: &str) -> String {
    format!("lower\nops\n  {op}\n")
}

#[test]
fn lexical_errors() {
    err(&entry("file a 0644 \"abc"), 2, 15, "unterminated string");
    err(&entry("file a 0644 \"a\\"), 2, 15, "unterminated string");
    err(
        &entry("file a 0644 \"a\\q\""),
        2,
        17,
        "unknown escape `\\q`",
    );
    err(&entry("file a 0644 \"\\x4g\""), 2, 16, "two hex digits");
    err(&entry("dir a\u{1}b 0755"), 2, 8, "control character U+0001");
    err(
        &entry("dir \u{e9}\u{e9}\u{1} 0755"),
        2,
        9,
        "control character",
    );
}

#[test]
fn structure_errors() {
    err(
        "dir a 0755\n",
        1,
        1,
        "expected `profile`, `known` or a section header",
    );
    err("", 1, 1, "at least one `lower`");
    err("# only a comment\n", 2, 1, "at least one `lower`");
    err("ops\n", 1, 1, "`ops` before any `lower`");
    err("upper\n", 1, 1, "`upper` before any `lower`");
    err("lower\nupper\nlower\n", 3, 1, "must come before `upper`");
    err("lower\nupper\nupper\n", 3, 1, "at most one `upper`");
    err("lower\nops\nops\n", 3, 1, "only one `ops`");
    err("lower\nops\nlower\n", 3, 1, "`ops` section must come last");
    err(
        "lower x\n",
        1,
        7,
        "unexpected `x` after section header `lower`",
    );
    err(
        "lower\n  dir a 0755 extra\n",
        2,
        14,
        "unexpected `extra` after `dir` entry",
    );
    err(&entry("frob a"), 2, 3, "expected a layer entry (dir, file,");
    err(&entry("\"dir\" a"), 2, 3, "expected a layer entry");
    err(&op("frob a"), 3, 3, "expected an op (lstat, stat,");
    err(&op("unlink a b"), 3, 12, "unexpected `b` after `unlink` op");
    // An offline change names one of the case's lower layers.
    err(
        &op("offline 1 remove a"),
        3,
        3,
        "the case has 1 lower layers (0 to 0)",
    );
    err(
        &op("offline 0 move a"),
        3,
        13,
        "expected `remove` or `file`",
    );
    err(&op("offline x remove a"), 3, 11, "a lower layer number");
    let c = ok("lower
ops
  offline 0 file d/n 0600 \"x\" => ok
  offline 0 remove d
");
    assert_eq!(
        ovlcheck_case::print_case(&c).lines().nth(2),
        Some("  offline 0 file d/n 0600 \"x\" => ok")
    );
    // `ops` alone ends the layers; a case without ops is fine.
    assert!(ok("lower\n").steps.is_empty());
}

#[test]
fn data_layer_sections() {
    let c = ok("data\n  file x/a 0644 \"d\"\ndata\nlower\n  file f 0644 \"\"\nops\n");
    assert_eq!((c.data.len(), c.lowers.len()), (2, 1));
    err("data\n", 2, 1, "at least one `lower`");
    err("data\nops\n", 2, 1, "`ops` before any `lower`");
    err(
        "lower\ndata\n",
        2,
        1,
        "`data` sections must come before `lower`",
    );
    err(
        "lower\nupper\ndata\n",
        3,
        1,
        "`data` sections must come before `lower`",
    );
    err(
        "data oci\n",
        1,
        6,
        "unexpected `oci` after section header `data`",
    );
    let many = "data\n".repeat(limits::MAX_LAYERS) + "lower\n";
    err(&many, limits::MAX_LAYERS + 1, 1, "lower and data layers");
}

#[test]
fn profile_errors() {
    err(
        "lower\nprofile redirect\n",
        2,
        1,
        "must come before the first section",
    );
    err(
        "profile redirect\nprofile index\n",
        2,
        1,
        "given twice (first on line 1)",
    );
    err(
        "profile\nlower\n",
        1,
        8,
        "expected a preset name or profile options",
    );
    err(
        "profile bogus\nlower\n",
        1,
        9,
        "unknown profile option or preset `bogus`",
    );
    err(
        "profile index=maybe\nlower\n",
        1,
        9,
        "expected `on` or `off`, found `maybe`",
    );
    err(
        "profile index redirect\nlower\n",
        1,
        15,
        "preset `redirect` cannot be combined",
    );
    err(
        "profile userxattr redirect_dir=on\nlower\n",
        1,
        1,
        "invalid profile: userxattr conflicts",
    );
    err(
        "profile \"redirect\"\nlower\n",
        1,
        9,
        "expected a preset name or a profile option",
    );
    let c = ok("profile index=on xino=on lower=separate\nlower\n");
    assert!(c.profile.index && c.profile.xino == ovlcheck_case::Xino::On);
    assert_eq!(
        ok("profile xino=auto lower=separate\nlower\n").profile,
        Profile::preset("xino-auto").unwrap()
    );
    assert_eq!(
        ok("profile metacopy\nlower\n").profile.redirect_dir,
        RedirectDir::On
    );
    assert_eq!(
        ok("profile redirect_dir=nofollow\nlower\n").profile,
        Profile::preset("nofollow").unwrap()
    );
    assert_eq!(
        ok("profile redirect_dir=off\nlower\n").profile,
        Profile::preset("redirect-off").unwrap()
    );
    assert_eq!(
        ok("profile userxattr redirect_dir=nofollow\nlower\n")
            .profile
            .redirect_dir,
        RedirectDir::NoFollow
    );
    for (text, why) in [
        (
            "metacopy redirect_dir=off",
            "metacopy=on conflicts with redirect_dir=off",
        ),
        (
            "redirect_dir=nofollow metacopy=on",
            "metacopy=on conflicts with redirect_dir=nofollow",
        ),
        (
            "userxattr redirect_dir=off",
            "userxattr conflicts with redirect_dir=off",
        ),
        (
            "userxattr metacopy=on",
            "userxattr conflicts with metacopy=on",
        ),
    ] {
        err(
            &format!("profile {text}\nlower\n"),
            1,
            1,
            &format!("invalid profile: {why}"),
        );
    }
    err(
        "profile redirect_dir=maybe\nlower\n",
        1,
        9,
        "expected `on`, `follow`, `off` or `nofollow`, found `maybe`",
    );
}

#[test]
fn volatile_and_fsync_profiles() {
    assert_eq!(
        ok("profile volatile\nlower\n").profile,
        Profile::preset("volatile").unwrap()
    );
    let strict = ok("profile fsync=strict\nlower\n").profile;
    assert_eq!(strict.fsync, Some(ovlcheck_case::Fsync::Strict));
    assert!(!strict.is_volatile());
    let fv = ok("profile fsync=volatile\nlower\n").profile;
    assert!(fv.is_volatile() && !fv.volatile);
    assert_eq!(fv.to_string(), "fsync=volatile");
    // The later option wins, as in params.c.
    let p = ok("profile volatile fsync=auto\nlower\n").profile;
    assert_eq!(
        (p.volatile, p.fsync),
        (false, Some(ovlcheck_case::Fsync::Auto))
    );
    let p = ok("profile fsync=strict volatile\nlower\n").profile;
    assert_eq!((p.volatile, p.fsync), (true, None));
    err(
        "profile fsync=never\nlower\n",
        1,
        9,
        "expected `fsync=auto`, `strict` or `volatile`",
    );
    err(
        "profile volatile upper_size=8192\nlower\n",
        1,
        1,
        "invalid profile: volatile with upper_size is not run",
    );
}

#[test]
fn path_errors() {
    err(
        &entry("dir /a 0755"),
        2,
        7,
        "invalid path `/a`: path is absolute",
    );
    err(&entry("dir a/../b 0755"), 2, 7, "`.` or `..` component");
    err(&entry("dir . 0755"), 2, 7, "`.` or `..` component");
    err(&entry("dir a//b 0755"), 2, 7, "empty component");
    err(&entry("dir a/ 0755"), 2, 7, "empty component");
    err(&entry("dir \"\" 0755"), 2, 7, "path is empty");
    err(&entry("dir \"a\\x00b\" 0755"), 2, 7, "NUL");
    err(
        &entry("dir \"\\xff\" 0755"),
        2,
        7,
        "path is not valid UTF-8",
    );
    err(
        &entry(&format!("dir {} 0755", "n".repeat(256))),
        2,
        7,
        "256 bytes long (NAME_MAX",
    );
    err(&entry("dir"), 2, 6, "expected a path, found end of line");
    err(&op("rmdir a//"), 3, 9, "empty component");
    err(&op("link a"), 3, 9, "expected a path, found end of line");
    err(
        &op("unlink => ENOENT"),
        3,
        10,
        "expected a path, found `=>`",
    );
    // Op paths may end in one `/`; quoted paths may hold anything valid.
    ok(&op("rmdir a/b/"));
    ok(&entry("dir \"a b/#c=>\" 0755"));
}

#[test]
fn value_errors() {
    err(
        &entry("dir a abc"),
        2,
        9,
        "expected a mode (octal, e.g. 0644), found `abc`",
    );
    err(
        &entry("dir a 0648"),
        2,
        9,
        "expected a mode (octal, e.g. 0644), found `0648`",
    );
    err(
        &entry("dir a 10000"),
        2,
        9,
        "mode `10000` is out of range (at most 07777)",
    );
    err(
        &entry("dir a"),
        2,
        8,
        "expected a mode (octal, e.g. 0644), found end of line",
    );
    err(
        &entry("file a 0644 abc"),
        2,
        15,
        "expected the file's data as a quoted string",
    );
    err(
        &entry("symlink a b"),
        2,
        13,
        "expected the symlink target as a quoted string",
    );
    err(
        &entry("file a 0644 \"\"\n  owner a x 0"),
        3,
        11,
        "expected a uid, found `x`",
    );
    err(
        &entry("file a 0644 \"\"\n  owner a -1 0"),
        3,
        11,
        "expected a uid, found `-1`",
    );
    err(
        &entry("file a 0644 \"\"\n  owner a 4294967296 0"),
        3,
        11,
        "a uid `4294967296` is out of range",
    );
    err(
        &entry("file a 0644 \"\"\n  mtime a 1.5"),
        3,
        11,
        "expected seconds since the epoch",
    );
    err(
        &entry("file a 0644 \"\"\n  mtime a -"),
        3,
        11,
        "expected seconds since the epoch",
    );
    err(
        &entry("redirect d \"\\xff\""),
        2,
        14,
        "redirect target is not valid UTF-8",
    );
    err(
        &op("as 1000 unlink a"),
        3,
        6,
        "expected UID:GID (e.g. 1000:1000), found `1000`",
    );
    err(&op("as 1000:x unlink a"), 3, 6, "expected UID:GID");
    err(
        &op("write a x \"d\""),
        3,
        11,
        "expected an offset, found `x`",
    );
    err(
        &op("truncate a 18446744073709551616"),
        3,
        14,
        "out of range",
    );
    err(&op("symlink \"a\\x00\" l"), 3, 11, "cannot contain a NUL");
    err(&op("getxattr a \"user.\\x00\""), 3, 14, "NUL");
    err(&op("getxattr a \"\\xff\""), 3, 14, "not valid UTF-8");
    assert_eq!(ok(&entry("dir a 00000755")).lowers[0].entries.len(), 1);
}

#[test]
fn xattr_name_errors() {
    let with = |name: &str| format!("lower\n  file a 0644 \"\"\n  xattr a {name} \"v\"\nops\n");
    err(
        &with("trusted.overlay.opaque"),
        3,
        11,
        "overlay-private: use the marker entries",
    );
    err(&with("user.overlay.redirect"), 3, 11, "overlay-private");
    err(
        &with("security.selinux"),
        3,
        11,
        "must be in the `user.` or `trusted.` namespace",
    );
    err(&with("user."), 3, 11, "empty name after its namespace");
    err(
        &with(&format!("user.{}", "k".repeat(251))),
        3,
        11,
        "XATTR_NAME_MAX",
    );
    // Ops may name anything, to test how overlay treats it, but for
    // setting a file capability, which the model does not cover.
    ok(&op("getxattr a trusted.overlay.opaque"));
    ok(&op("removexattr a security.capability"));
    err(
        &op("setxattr a security.capability \"x\""),
        3,
        14,
        "cannot be set by an op",
    );
}

#[test]
fn flag_errors() {
    err(&op("open a rdwr rdwr"), 3, 15, "flag `rdwr` given twice");
    err(
        &op("open a bogus"),
        3,
        10,
        "expected one of the flags `rdwr`, `trunc`, found `bogus`",
    );
    err(&op("create a 0644 noreplace"), 3, 17, "`excl`, `trunc`");
    err(
        &op("rename a b exchange rdwr"),
        3,
        23,
        "`noreplace`, `exchange`, `whiteout`",
    );
    ok(&op("rename a b whiteout noreplace => EINVAL"));
}

#[test]
fn open_flag_and_fd_errors() {
    err(
        &op("open a O_RDONLY|O_BOGUS"),
        3,
        19,
        "unknown open flag `O_BOGUS`",
    );
    err(
        &op("open a O_RDWR|O_CREAT|O_CREAT 0644"),
        3,
        25,
        "flag `O_CREAT` given twice",
    );
    assert_eq!(
        ok(&op("open a O_CREAT 0644")).steps[0].op,
        ok(&op("open a O_RDONLY|O_CREAT 0644")).steps[0].op
    );
    err(
        &op("open a O_RDONLY|O_WRONLY"),
        3,
        19,
        "only one of O_RDONLY",
    );
    err(
        &op("open a O_WRONLY|O_CREAT as f"),
        3,
        27,
        "expected a mode",
    );
    err(&op("open a O_RDONLY as 9f"), 3, 22, "invalid fd name `9f`");
    err(&op("open a O_RDONLY as"), 3, 21, "expected an fd name");
    err(&op("open a rdwr as F"), 3, 18, "invalid fd name `F`");
    err(&op("open a O_RDONLY 0644"), 3, 19, "unexpected `0644`");
    err(&op("fread"), 3, 8, "expected an fd name");
    err(&op("fread f x"), 3, 11, "expected a byte count");
    err(
        &op("fwrite f 3"),
        3,
        13,
        "expected the data as a quoted string",
    );
    err(
        &op("lseek f 0 SEEK_HOLE"),
        3,
        13,
        "expected SEEK_SET, SEEK_CUR or SEEK_END",
    );
    err(&op("lseek f x SEEK_SET"), 3, 11, "expected an offset");
    err(&op("close f g"), 3, 11, "unexpected `g` after `close` op");
    err(
        &op("utimes a later"),
        3,
        12,
        "seconds since the epoch or `now`",
    );
    ok(&op("utimes a now => EACCES"));
    ok(&op("open a O_RDONLY|O_DIRECTORY|O_CREAT 0755 => EINVAL"));
}

#[test]
fn limit_fds() {
    let opens = |n: usize| {
        let mut s = String::from("lower\nops\n");
        for i in 0..n {
            s.push_str(&format!(
                "  open a O_RDONLY as f{i}\n  open a O_RDONLY as f{i}\n"
            ));
        }
        s
    };
    ok(&opens(limits::MAX_FDS));
    err(
        &opens(limits::MAX_FDS + 1),
        2 * limits::MAX_FDS + 3,
        3,
        "limits::MAX_FDS",
    );
}

#[test]
fn outcome_errors() {
    err(
        &op("unlink a =>"),
        3,
        14,
        "expected an outcome (ok, an errno",
    );
    err(&op("unlink a => EFROB"), 3, 15, "expected an outcome");
    err(&op("unlink a => E0"), 3, 15, "expected an outcome");
    err(
        &op("unlink a => ok ok"),
        3,
        18,
        "unexpected `ok` after the expected outcome",
    );
    err(&op("unlink a => ]"), 3, 15, "expected an outcome");
    err(
        &op("readdir a => [\"x\" \"y\"]"),
        3,
        21,
        "expected `,` or `]`",
    );
    err(&op("readdir a => [\"x\","), 3, 21, "expected a name");
    err(&op("readdir a => [\"\\xff\"]"), 3, 17, "not valid UTF-8");
    err(
        &op("stat a => {dev 0644 0:0 size=1 nlink=1}"),
        3,
        14,
        "expected a file kind",
    );
    err(
        &op("stat a => {file 0644 0:0 nlink=1}"),
        3,
        28,
        "expected `size=N`, found `nlink=1`",
    );
    err(
        &op("stat a => {file 0644 0:0 size=1 nlink=x}"),
        3,
        35,
        "expected `nlink=N`",
    );
    err(
        &op("stat a => {file 0644 0:0 size=1 nlink=1"),
        3,
        42,
        "expected `}`, found end of line",
    );
    err(
        &op("statfs a => {fsid=mine}"),
        3,
        16,
        "expected fsid=own, upper, lower or zero, found `fsid=mine`",
    );
    err(
        &op("statfs a => {fsid=own"),
        3,
        24,
        "expected `}`, found end of line",
    );
    let c = ok(&op("readdir a => []"));
    assert!(c.steps[0].expect.is_some());
    let c = ok(&op("statfs a => {fsid=lower}"));
    assert_eq!(
        c.steps[0].expect,
        Some(ovlcheck_case::Outcome::Ok(ovlcheck_case::Value::Fsid(
            ovlcheck_case::Fsid::Lower
        )))
    );
}

#[test]
fn layer_errors_point_at_the_entry() {
    let l = |body: &str| format!("lower\n  dir d 0755\n{body}\nops\n");
    err(
        &l("  dir d 0700"),
        3,
        7,
        "`d` already exists in this layer (as a directory)",
    );
    err(
        &l("  file d/f 0644 \"\"\n  file d/f/g 0644 \"\""),
        4,
        8,
        "parent `d/f` of `d/f/g` is a regular file",
    );
    err(
        &l("  hardlink h missing"),
        3,
        12,
        "hard link target `missing` does not exist",
    );
    err(
        &l("  hardlink h d"),
        3,
        12,
        "is a directory, not a file, symlink or fifo",
    );
    err(
        &l("  owner x 1 1"),
        3,
        9,
        "owner on `x`, which no earlier entry of this layer creates",
    );
    err(&l("  mtime x 1"), 3, 9, "mtime on `x`");
    err(&l("  xattr x user.a \"\""), 3, 9, "xattr on `x`");
    err(
        &l("  file f 0644 \"\"\n  opaque f"),
        4,
        10,
        "opaque needs a directory, but `f` is a regular file",
    );
    err(
        &l("  file f 0644 \"\"\n  xwhiteouts f"),
        4,
        14,
        "xwhiteouts needs a directory",
    );
    err(
        &l("  symlink f \"t\"\n  redirect f \"/x\""),
        4,
        12,
        "redirect marks a directory or a (metacopy) regular file, `f` is a symlink",
    );
    err(
        &l("  file e 0644 \"\"\n  redirect e \"/x\"\n  redirect e \"/y\""),
        5,
        12,
        "already has a redirect",
    );
    err(
        &l("  opaque d\n  xwhiteouts d"),
        4,
        14,
        "already has an opaque or xwhiteouts marker",
    );
    err(
        &l("  redirect d \"a\"\n  redirect d \"b\""),
        4,
        12,
        "already has a redirect",
    );
    err(&l("  redirect d \"\""), 3, 12, "must be non-empty");
    err(
        &l("  symlink s \"t\"\n  xattr s user.a \"\""),
        4,
        9,
        "`user.*` xattrs can only be set on files and directories",
    );
    err(
        &l("  symlink s \"\""),
        3,
        11,
        "symlink target cannot be empty",
    );
    err(&l("  symlink s \"a\\x00\""), 3, 11, "NUL");
    err(&l("  whiteout d"), 3, 12, "`d` already exists");
    err(
        &l("  xwhiteout d/w\n  xwhiteout d/w"),
        4,
        13,
        "already exists",
    );
    // An explicit `dir` may follow a deeper entry that implied it.
    ok("lower\n  file d/f 0644 \"\"\n  dir d 0700\nops\n");
    // Layers are validated one by one: the same path in two layers is fine.
    ok("lower\n  dir d 0755\nlower\n  dir d 0755\nupper\n  whiteout d\nops\n");
    err(
        "lower\nupper\n  dir d 0755\n  dir d 0755\nops\n",
        4,
        7,
        "already exists",
    );
}

#[test]
fn oci_layer_errors_point_at_the_entry() {
    let l = |body: &str| format!("lower oci\n  dir d 0755\n{body}\nops\n");
    err(
        "lower oci oci\n",
        1,
        11,
        "unexpected `oci` after section header `lower`",
    );
    err("upper oci\n", 1, 1, "`upper` before any `lower`");
    err(
        "lower\nops oci\n",
        2,
        5,
        "unexpected `oci` after section header `ops`",
    );
    err(
        &l("  file d/.wh.w 0644 \"x\""),
        3,
        8,
        "whiteout entry `d/.wh.w` must be an empty regular file",
    );
    err(
        &l("  dir d/.wh.w 0755"),
        3,
        7,
        "must be an empty regular file",
    );
    err(
        &l("  symlink .wh.s \"t\""),
        3,
        11,
        "must be an empty regular file",
    );
    err(
        &l("  fifo d/.wh..wh..opq 0600"),
        3,
        8,
        "must be an empty regular file",
    );
    err(
        &l("  file f 0644 \"\"\n  hardlink d/.wh.h f"),
        4,
        12,
        "must be an empty regular file",
    );
    err(
        &l("  file d/.wh.w 0644 \"\"\n  hardlink h d/.wh.w"),
        4,
        12,
        "hard link target `d/.wh.w` is a whiteout marker",
    );
    for bad in [".wh.", ".wh..", ".wh..."] {
        err(
            &l(&format!("  file d/{bad} 0644 \"\"")),
            3,
            8,
            &format!("invalid whiteout entry `d/{bad}`: `{bad}` names no file to delete"),
        );
    }
    err(
        &l("  file .wh.x/y 0644 \"\""),
        3,
        8,
        "lies under `.wh.x`, a whiteout name",
    );
    err(
        &l("  file .wh..wh..opq 0644 \"\""),
        3,
        8,
        "would make the layer root opaque",
    );
    err(
        &l("  file d/.wh.w 0644 \"\"\n  file d/.wh.w 0644 \"\""),
        4,
        8,
        "`d/.wh.w` already exists in this layer",
    );
    // Whiteouts only delete from lower layers: `.wh.x` and `x` in one layer
    // are one path created twice, in either order.
    err(
        &l("  file d/x 0644 \"\"\n  file d/.wh.x 0644 \"\""),
        4,
        8,
        "`d/x` already exists in this layer (as a regular file)",
    );
    err(
        &l("  file d/.wh.x 0644 \"\"\n  dir d/x 0755"),
        4,
        7,
        "`d/x` already exists in this layer (as a whiteout)",
    );
    err(
        &l("  owner d/.wh.w 1 1"),
        3,
        9,
        "owner on `d/.wh.w`, which no earlier entry of this layer creates",
    );
    err(
        &l("  mtime d/.wh..wh..opq 1"),
        3,
        9,
        "mtime on `d/.wh..wh..opq`",
    );
    err(&l("  xattr .wh.w user.k \"\""), 3, 9, "xattr on `.wh.w`");
    // The marker's directory must be one.
    err(
        &l("  file f 0644 \"\"\n  file f/.wh..wh..opq 0644 \"\""),
        4,
        8,
        "opaque needs a directory, but `f` is a regular file",
    );
    err(
        &l("  whiteout d/w"),
        3,
        12,
        "write the whiteout as `file d/.wh.w 0644 \"\"`",
    );
    err(
        &l("  opaque d"),
        3,
        10,
        "write the opaque marker as `file d/.wh..wh..opq 0644 \"\"`",
    );
    err(&l("  xwhiteouts d"), 3, 14, "have no OCI form");
    err(&l("  xwhiteout d/x"), 3, 13, "have no OCI form");
    err(&l("  redirect d \"/a\""), 3, 12, "have no OCI form");
    // The same entries are ordinary in an overlay layer.
    ok("lower\n  file d/.wh.w 0644 \"x\"\n  file .wh.x/y 0644 \"\"\nops\n");
}

fn big(n: usize, line: &str) -> String {
    let mut s = String::with_capacity(n * (line.len() + 1));
    for _ in 0..n {
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn limit_input_size() {
    let mut text = "lower\n".to_string();
    text.push_str(&" ".repeat(limits::MAX_INPUT_BYTES + 1 - text.len()));
    err(&text, 1, 1, "limits::MAX_INPUT_BYTES");
}

#[test]
fn limit_layer_entries() {
    let entries = |n| {
        let mut s = "lower\n".to_string();
        for i in 0..n {
            s.push_str(&format!("  dir d{i} 0755\n"));
        }
        s
    };
    ok(&entries(limits::MAX_LAYER_ENTRIES));
    err(
        &entries(limits::MAX_LAYER_ENTRIES + 1),
        limits::MAX_LAYER_ENTRIES + 2,
        3,
        "limits::MAX_LAYER_ENTRIES",
    );
}

#[test]
fn limit_layers() {
    assert_eq!(
        ok(&big(limits::MAX_LAYERS, "lower")).lowers.len(),
        limits::MAX_LAYERS
    );
    err(
        &big(limits::MAX_LAYERS + 1, "lower"),
        limits::MAX_LAYERS + 1,
        1,
        "limits::MAX_LAYERS",
    );
}

#[test]
fn limit_ops() {
    let ops = |n| format!("lower\nops\n{}", big(n, "  remount"));
    assert_eq!(ok(&ops(limits::MAX_OPS)).steps.len(), limits::MAX_OPS);
    err(
        &ops(limits::MAX_OPS + 1),
        limits::MAX_OPS + 3,
        3,
        "limits::MAX_OPS",
    );
}

#[test]
fn limit_path_depth() {
    let path = |n: usize| vec!["a"; n].join("/");
    ok(&entry(&format!(
        "dir {} 0755",
        path(limits::MAX_PATH_DEPTH)
    )));
    err(
        &entry(&format!("dir {} 0755", path(limits::MAX_PATH_DEPTH + 1))),
        2,
        7,
        "65 components, over the limit of 64 (limits::MAX_PATH_DEPTH)",
    );
    err(
        &op(&format!("unlink {}/", path(limits::MAX_PATH_DEPTH + 1))),
        3,
        10,
        "limits::MAX_PATH_DEPTH",
    );
}

#[test]
fn limit_string() {
    let s = |n| format!("lower\n  file f 0644 \"{}\"\n", "x".repeat(n));
    ok(&s(limits::MAX_STRING));
    err(&s(limits::MAX_STRING + 1), 2, 15, "limits::MAX_STRING");
}

#[test]
fn limit_file_data() {
    let max = limits::MAX_FILE_DATA;
    ok(&op(&format!("write f {} \"x\"", max - 1)));
    err(
        &op(&format!("write f {max} \"x\"")),
        3,
        11,
        "limits::MAX_FILE_DATA",
    );
    ok(&op(&format!("truncate f {max}")));
    err(
        &op(&format!("truncate f {}", max + 1)),
        3,
        14,
        "limits::MAX_FILE_DATA",
    );
}

/// A `known` line names a backend and a signature the parser checks, with
/// the signature's column.
#[test]
fn known_line_errors() {
    err(
        "known kernel \"merged view: colour\"\nlower\n",
        1,
        14,
        "bad signature: unknown view field `colour`",
    );
    err("known kernel\nlower\n", 1, 13, "the quoted signature");
    err(
        "lower\nknown kernel \"merged view: mode\"\n",
        2,
        1,
        "`known` must come before the first section",
    );
}

#[test]
fn acl_errors() {
    let with =
        |name: &str, v: &str| format!("lower\n  file a 0644 \"\"\n  xattr a {name} \"{v}\"\nops\n");
    let access = "system.posix_acl_access";
    ok(&with(access, "u::rw-,u:1000:r--,g::r--,m::r--,o::---"));
    err(
        &with(access, "u::rw-,x::r--"),
        3,
        35,
        "`x::r--` is not an ACL entry",
    );
    err(
        &with(access, "u::rw-,u:1000:r--,g::r--,o::---"),
        3,
        35,
        "not an ACL the kernel keeps",
    );
    err(
        &with("system.posix_acl_default", "u::rwx,g::r-x,o::r-x"),
        3,
        9,
        "goes on a directory, `a` is a regular file",
    );
    // A step may set an ACL the kernel refuses, not a value that is no ACL.
    ok(&op(
        "setxattr a system.posix_acl_access \"g::r--,u::rw-,o::---\"",
    ));
    err(
        &op("setxattr a system.posix_acl_access \"rw\""),
        3,
        38,
        "`rw` is not an ACL entry",
    );
}

#[test]
fn escaped_layer_errors_point_at_the_entry() {
    err(
        "lower escaped oci\n",
        1,
        15,
        "unexpected `oci` after section header `lower`",
    );
    err(
        "lower\nupper escaped\n",
        2,
        7,
        "unexpected `escaped` after section header `upper`",
    );
    err(
        "lower\n  dir d 0755\nlower escaped\n  dir d 0755\n  whiteout d/w\nops\n",
        5,
        12,
        "a char 0/0 whiteout cannot be escaped",
    );
    ok("lower escaped\n  dir d 0755\n  xwhiteouts d\n  xwhiteout d/w\nops\n");
}
