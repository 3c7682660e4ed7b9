//! Error numbers as Linux returns them. The driver passes the kernel's errno
//! through untranslated; the model predicts one of these.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! errnos {
    ($($name:ident = $num:expr),* $(,)?) => {
        /// A Linux errno (asm-generic numbering, shared by x86_64 and arm64).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Errno {
            $($name,)*
            /// Any errno without a name here, by number.
            Other(i32),
        }

        impl Errno {
            /// Every named errno, for parsers and generators.
            pub const NAMED: &'static [Errno] = &[$(Errno::$name,)*];

            /// The Linux errno number.
            pub fn code(self) -> i32 {
                match self {
                    $(Errno::$name => $num,)*
                    Errno::Other(n) => n,
                }
            }

            /// The errno for a Linux errno number.
            pub fn from_code(code: i32) -> Errno {
                match code {
                    $($num => Errno::$name,)*
                    n => Errno::Other(n),
                }
            }

            /// The symbolic name, e.g. `"ENOENT"`, or `"E123"` for unnamed ones.
            pub fn name(self) -> String {
                match self {
                    $(Errno::$name => stringify!($name).to_string(),)*
                    Errno::Other(n) => format!("E{n}"),
                }
            }

            /// Parses `"ENOENT"` or `"E123"`.
            pub fn from_name(s: &str) -> Option<Errno> {
                match s {
                    $(stringify!($name) => Some(Errno::$name),)*
                    _ => s.strip_prefix('E')?.parse::<i32>().ok().filter(|n| *n > 0).map(Errno::from_code),
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9,
    EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, ENOTTY = 25,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21,
    EINVAL = 22, EMFILE = 24, ETXTBSY = 26, EFBIG = 27, ENOSPC = 28,
    ESPIPE = 29, EROFS = 30, EMLINK = 31, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36,
    ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61, EOVERFLOW = 75,
    EOPNOTSUPP = 95, ESTALE = 116, EDQUOT = 122,
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
