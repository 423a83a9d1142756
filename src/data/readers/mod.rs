//! One reader per source format, each turning its files into the canonical [`Dataset`].
//! Adding a format is one new file here.

pub mod smner;
