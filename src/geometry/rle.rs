//! COCO run-length encoding (the pycocotools format: column-major, runs alternate 0/1 starting
//! with 0, compressed counts use pycocotools' LEB128-like string encoding).

use serde::{Deserialize, Serialize};

/// A COCO RLE mask: `{"size": [h, w], "counts": "..."}` (compressed) or `"counts": [..]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: RleCounts,
}

/// Compressed string counts (pycocotools) or an uncompressed list of run lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RleCounts {
    Compressed(String),
    Runs(Vec<u64>),
}

/// Placeholder until the RLE codec lands (replaced on merge).
pub fn iou(_a: &CocoRle, _b: &CocoRle) -> Result<f64, String> {
    Err("RLE codec not built yet".into())
}

/// Placeholder until the RLE codec lands (replaced on merge).
pub fn from_bbox(_b: &crate::geometry::BBox, h: u32, w: u32) -> CocoRle {
    CocoRle {
        size: [h, w],
        counts: RleCounts::Runs(vec![u64::from(h) * u64::from(w)]),
    }
}
