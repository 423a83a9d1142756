//! Boxes and masks: box IoU (the seed's formula), COCO RLE encode/decode/area/IoU, polygons → RLE.
//! Must not allocate per pixel where runs suffice.

pub mod bbox;
pub mod rle;

pub use bbox::{box_iou, BBox};
pub use rle::{CocoRle, RleCounts};
