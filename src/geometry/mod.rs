//! Boxes and masks: box IoU (the seed's formula), COCO RLE encode/decode/area/IoU, polygons → RLE.
//! Must not allocate per pixel where runs suffice.

pub mod bbox;
pub mod error;
pub mod polygon;
pub mod rle;

pub use bbox::{box_iou, BBox};
pub use error::MaskError;
pub use polygon::{polygon_to_rle, single_polygon_to_rle};
pub use rle::{counts_from_string, counts_to_string, mask_iou, CocoRle, Rle, RleCounts};
