//! The real half of every differential check. Depends on `case` only.
