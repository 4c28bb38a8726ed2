//! COCO detection JSON (`annotations.json`): bbox `[x, y, w, h]` in absolute pixels, category ids
//! from 1.

use serde::{Deserialize, Serialize};

/// The top-level document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// Images, ids from 1.
    pub images: Vec<CocoImage>,
    /// Boxes.
    pub annotations: Vec<CocoAnnotation>,
    /// Classes, ids from 1.
    pub categories: Vec<CocoCategory>,
}

/// One image entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// Id referenced by annotations.
    pub id: u64,
    /// Path relative to the images folder.
    pub file_name: String,
    /// Upright width, pixels.
    pub width: u32,
    /// Upright height, pixels.
    pub height: u32,
}

/// One box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// Annotation id, from 1.
    pub id: u64,
    /// Image it belongs to.
    pub image_id: u64,
    /// Category id.
    pub category_id: u64,
    /// `[x, y, width, height]`, absolute pixels.
    pub bbox: [f64; 4],
    /// `width × height` (COCO tools expect it).
    pub area: f64,
    /// Always 0: boxes are single objects.
    #[serde(default)]
    pub iscrowd: u8,
}

/// One class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id, from 1.
    pub id: u64,
    /// Class name.
    pub name: String,
    /// Grouping label; Distillery writes `"object"`.
    #[serde(default)]
    pub supercategory: String,
}

/// COCO `bbox` from pixel corners.
pub fn bbox_from_corners([x0, y0, x1, y1]: [f64; 4]) -> [f64; 4] {
    [x0, y0, x1 - x0, y1 - y0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_is_xywh() {
        assert_eq!(bbox_from_corners([10.0, 20.0, 40.0, 25.0]), [10.0, 20.0, 30.0, 5.0]);
    }

    #[test]
    fn reads_documents_written_elsewhere() {
        let json = r#"{"images":[{"id":1,"file_name":"a.jpg","width":4,"height":3,"license":1}],
            "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,2,1],"area":2,"segmentation":[]}],
            "categories":[{"id":1,"name":"cat"}],"info":{}}"#;
        let dataset: CocoDataset = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dataset.annotations[0].bbox, [0.0, 0.0, 2.0, 1.0]);
        assert_eq!(dataset.categories[0].supercategory, "");
    }
}
