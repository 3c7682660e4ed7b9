//! Deterministic layer ids in Docker's shapes. overlay2 names a layer
//! directory by a 64-hex cache id (`layer/filestore.go`:
//! `^[a-f0-9]{64}(-init)?$`) and its `l/` short link by 26 characters of
//! RFC 4648 base32 (`overlayutils/randomid.go`: `GenerateID(26)`). Docker
//! draws both at random; here they are derived from a seed and a counter so
//! that a case lays out identically on every run.

/// Length of an `l/` short link id (overlay2 `idLength`).
pub const LINK_ID_LEN: usize = 26;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 (upper case, no padding) of `bytes`.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Generates the ids of one store: the n-th call gives the same ids for the
/// same seed.
#[derive(Clone, Debug)]
pub struct IdGen {
    seed: u64,
    counter: u64,
}

impl IdGen {
    pub fn new(seed: u64) -> IdGen {
        IdGen { seed, counter: 0 }
    }

    fn next_hash(&mut self, what: &str) -> blake3::Hash {
        self.counter += 1;
        let mut h = blake3::Hasher::new();
        h.update(b"ovlcheck-overlay2\0");
        h.update(what.as_bytes());
        h.update(&self.seed.to_le_bytes());
        h.update(&self.counter.to_le_bytes());
        h.finalize()
    }

    /// A 64-hex layer (cache) id.
    pub fn layer_id(&mut self) -> String {
        self.next_hash("layer").to_hex().to_string()
    }

    /// A 26-character base32 link id: like `GenerateID`, 17 bytes
    /// (`(26*5+7)/8`) encoded and cut to 26.
    pub fn link_id(&mut self) -> String {
        let h = self.next_hash("link");
        let mut s = base32(&h.as_bytes()[..(LINK_ID_LEN * 5).div_ceil(8)]);
        s.truncate(LINK_ID_LEN);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn ids_have_docker_shapes_and_are_deterministic() {
        let mut a = IdGen::new(7);
        let mut b = IdGen::new(7);
        let (l, k) = (a.layer_id(), a.link_id());
        assert_eq!(l.len(), 64);
        assert!(l
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(k.len(), LINK_ID_LEN);
        assert!(k.bytes().all(|c| BASE32.contains(&c)));
        assert_eq!((b.layer_id(), b.link_id()), (l, k.clone()));
        assert_ne!(a.link_id(), k);
    }
}
