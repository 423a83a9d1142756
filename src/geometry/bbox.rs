//! Axis-aligned boxes `[x1, y1, x2, y2]` in original-image pixels, and their IoU.

use serde::{Deserialize, Serialize};

/// `[x1, y1, x2, y2]`, floats, original-image pixels (continuous coordinates, no +1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BBox(pub [f64; 4]);

impl BBox {
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        BBox([x1, y1, x2, y2])
    }
    pub fn x1(&self) -> f64 {
        self.0[0]
    }
    pub fn y1(&self) -> f64 {
        self.0[1]
    }
    pub fn x2(&self) -> f64 {
        self.0[2]
    }
    pub fn y2(&self) -> f64 {
        self.0[3]
    }
    pub fn width(&self) -> f64 {
        self.x2() - self.x1()
    }
    pub fn height(&self) -> f64 {
        self.y2() - self.y1()
    }
    /// Area as the seed computes it: `(x2 - x1) * (y2 - y1)`, not clamped.
    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }
    /// Why the box is invalid, if it is: non-finite numbers or x2 < x1 / y2 < y1.
    pub fn validate(&self) -> Result<(), String> {
        if self.0.iter().any(|v| !v.is_finite()) {
            return Err(format!("box {:?} has a non-finite coordinate", self.0));
        }
        if self.x2() < self.x1() || self.y2() < self.y1() {
            return Err(format!("box {:?} has x2 < x1 or y2 < y1", self.0));
        }
        Ok(())
    }
}

/// IoU exactly as RiVEG's `statistic.py` computes it: continuous coordinates, intersection clamped
/// at zero, union = area1 + area2 - intersection, and 0 when the union is 0.
pub fn box_iou(a: &BBox, b: &BBox) -> f64 {
    let x_left = a.x1().max(b.x1());
    let y_top = a.y1().max(b.y1());
    let x_right = a.x2().min(b.x2());
    let y_bottom = a.y2().min(b.y2());
    let intersection = (x_right - x_left).max(0.0) * (y_bottom - y_top).max(0.0);
    let union = a.area() + b.area() - intersection;
    if union == 0.0 {
        0.0
    } else {
        intersection / union
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one() {
        let a = BBox::new(1.0, 339.0, 597.0, 631.0);
        assert_eq!(box_iou(&a, &a), 1.0);
    }

    #[test]
    fn iou_half_overlap() {
        let a = BBox::new(0.0, 0.0, 2.0, 1.0);
        let b = BBox::new(1.0, 0.0, 3.0, 1.0);
        assert!((box_iou(&a, &b) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn zero_union_gives_zero() {
        let z = BBox::new(0.0, 0.0, 0.0, 0.0);
        assert_eq!(box_iou(&z, &z), 0.0);
    }

    #[test]
    fn validate_rejects_inverted_and_nan() {
        assert!(BBox::new(5.0, 0.0, 1.0, 1.0).validate().is_err());
        assert!(BBox::new(f64::NAN, 0.0, 1.0, 1.0).validate().is_err());
        assert!(BBox::new(0.0, 0.0, 1.0, 1.0).validate().is_ok());
    }
}
