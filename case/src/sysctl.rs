//! The VFS's `fs.protected_*` sysctls: checks the kernel makes on any
//! filesystem, overlay included, whose outcome depends on the machine's
//! settings rather than on the mount. A case names the settings its
//! outcomes hold for (profile options `protected_symlinks=1` and so on);
//! the settings of the host this project's corpus was observed on are the
//! default, and only the others are written.

use serde::{Deserialize, Serialize};

/// `fs.protected_symlinks`, `fs.protected_hardlinks`, `fs.protected_fifos`
/// and `fs.protected_regular` (Documentation/admin-guide/sysctl/fs.rst).
/// The default, [`Sysctls::HOST_DEFAULT`], is 0, 1, 0, 0. Many
/// distributions set all four to 1 or more (systemd's `50-default.conf`),
/// and Debian's kernels start with `protected_symlinks` at 1 (seen in the
/// vm backend's 6.1 guest, docs/vm.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sysctls {
    /// 1: a symlink in a sticky world-writable directory is followed only
    /// by its owner, or when the directory's owner owns it (namei.c:
    /// may_follow_link, for a path's last component).
    pub protected_symlinks: u8,
    /// 1: only an owner, or a caller who may read and write a regular,
    /// non-set-id file, may hard-link it (namei.c: may_linkat).
    pub protected_hardlinks: u8,
    /// 1: `O_CREAT` does not open an existing fifo in a sticky
    /// world-writable directory that neither the caller nor the
    /// directory's owner owns; 2: nor in a sticky group-writable one
    /// (namei.c: may_create_in_sticky).
    pub protected_fifos: u8,
    /// As `protected_fifos`, for regular files.
    pub protected_regular: u8,
}

impl Sysctls {
    /// The settings the corpus was observed with, and what a case without
    /// `protected_*` options describes.
    pub const HOST_DEFAULT: Sysctls = Sysctls {
        protected_symlinks: 0,
        protected_hardlinks: 1,
        protected_fifos: 0,
        protected_regular: 0,
    };

    /// Each sysctl: its name under `/proc/sys/fs` (and as a profile
    /// option) and its largest value.
    pub const NAMES: [(&'static str, u8); 4] = [
        ("protected_symlinks", 1),
        ("protected_hardlinks", 1),
        ("protected_fifos", 2),
        ("protected_regular", 2),
    ];

    /// The value of the sysctl named `name` (one of [`Sysctls::NAMES`]).
    pub fn get(&self, name: &str) -> Option<u8> {
        let mut copy = *self;
        copy.slot(name).map(|v| *v)
    }

    /// The field that holds the sysctl named `name`: the one place names
    /// map to fields.
    fn slot(&mut self, name: &str) -> Option<&mut u8> {
        Some(match name {
            "protected_symlinks" => &mut self.protected_symlinks,
            "protected_hardlinks" => &mut self.protected_hardlinks,
            "protected_fifos" => &mut self.protected_fifos,
            "protected_regular" => &mut self.protected_regular,
            _ => return None,
        })
    }

    /// Sets the sysctl named `name`; `Err` says why not (an unknown name,
    /// or a value the kernel refuses).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let max = Sysctls::NAMES
            .iter()
            .find_map(|&(n, max)| (n == name).then_some(max))
            .ok_or_else(|| format!("unknown sysctl `{name}`"))?;
        let v = value
            .parse::<u8>()
            .ok()
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("expected `{name}=0` to `{name}={max}`, found `{value}`"))?;
        let slot = self
            .slot(name)
            .expect("every name in Sysctls::NAMES has a field");
        *slot = v;
        Ok(())
    }

    /// The profile options that differ from [`Sysctls::HOST_DEFAULT`]
    /// (`protected_symlinks=1`), in [`Sysctls::NAMES`] order.
    pub fn options(&self) -> Vec<String> {
        Sysctls::NAMES
            .iter()
            .filter_map(|(name, _)| {
                let v = self.get(name)?;
                (Some(v) != Sysctls::HOST_DEFAULT.get(name)).then(|| format!("{name}={v}"))
            })
            .collect()
    }
}

impl Default for Sysctls {
    fn default() -> Sysctls {
        Sysctls::HOST_DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_other_than_the_default_are_options() {
        assert!(Sysctls::default().options().is_empty());
        let mut s = Sysctls::default();
        s.set("protected_symlinks", "1").unwrap();
        s.set("protected_hardlinks", "0").unwrap();
        s.set("protected_regular", "2").unwrap();
        assert_eq!(
            s.options(),
            [
                "protected_symlinks=1",
                "protected_hardlinks=0",
                "protected_regular=2"
            ]
        );
    }

    #[test]
    fn values_the_kernel_refuses_are_errors() {
        let mut s = Sysctls::default();
        assert!(s.set("protected_symlinks", "2").is_err());
        assert!(s.set("protected_fifos", "3").is_err());
        assert!(s.set("protected_fifos", "x").is_err());
        assert!(s.set("protected_other", "1").is_err());
        assert_eq!(s, Sysctls::default(), "nothing set by a refused value");
    }

    #[test]
    fn every_name_has_its_own_field() {
        for (i, (name, max)) in Sysctls::NAMES.into_iter().enumerate() {
            let mut s = Sysctls {
                protected_symlinks: 0,
                protected_hardlinks: 0,
                protected_fifos: 0,
                protected_regular: 0,
            };
            s.set(name, &max.to_string()).unwrap();
            assert_eq!(s.get(name), Some(max));
            let set: Vec<u8> = Sysctls::NAMES.map(|(n, _)| s.get(n).unwrap()).to_vec();
            let mut want = vec![0; 4];
            want[i] = max;
            assert_eq!(set, want, "{name}");
        }
        assert_eq!(Sysctls::default().get("protected_other"), None);
    }
}
