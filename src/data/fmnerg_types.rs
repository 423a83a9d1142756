//! The Twitter-FMNERG type tree (8 coarse types, 51 fine types), as it occurs in the shared test
//! split (`../shared/datasets/twitter-fmnerg/txt_fine/test.txt`, every fine type under exactly
//! one coarse type there). Readers use it to refuse a fine tag whose coarse type disagrees with
//! the coarse column; fine types outside the tree are allowed (a dataset may extend it) and the
//! tree of each file is checked separately for fine types under two coarse types (a warning).

/// coarse type → its fine types.
pub const FMNERG_TYPE_TREE: &[(&str, &[&str])] = &[
    (
        "art",
        &[
            "art_other",
            "film_and_television_works",
            "magazine",
            "music",
            "written_work",
        ],
    ),
    (
        "building",
        &[
            "building_other",
            "cultural_place",
            "entertainment_place",
            "sports_facility",
        ],
    ),
    ("event", &["event_other", "festival", "sports_event"]),
    (
        "location",
        &[
            "city",
            "continent",
            "country",
            "location_other",
            "park",
            "road",
            "state",
        ],
    ),
    (
        "organization",
        &[
            "band",
            "company",
            "educational_institution",
            "government_agency",
            "news_agency",
            "organization_other",
            "political_party",
            "social_organization",
            "sports_league",
            "sports_team",
        ],
    ),
    (
        "other",
        &["animal", "award", "medical_thing", "ordinance", "website"],
    ),
    (
        "person",
        &[
            "actor",
            "artist",
            "athlete",
            "author",
            "businessman",
            "character",
            "coach",
            "director",
            "intellectual",
            "journalist",
            "musician",
            "person_other",
            "politician",
        ],
    ),
    (
        "product",
        &["brand_name_products", "game", "product_other", "software"],
    ),
];

/// The FMNERG coarse type of a known fine type.
pub fn coarse_of(fine: &str) -> Option<&'static str> {
    FMNERG_TYPE_TREE
        .iter()
        .find(|(_, fines)| fines.contains(&fine))
        .map(|(coarse, _)| *coarse)
}

/// Whether `coarse` is one of FMNERG's coarse types (and not, say, GMNER's PER/LOC/ORG/OTHER).
pub fn is_fmnerg_coarse(coarse: &str) -> bool {
    FMNERG_TYPE_TREE.iter().any(|(c, _)| *c == coarse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_has_8_coarse_and_51_fine_types() {
        assert_eq!(FMNERG_TYPE_TREE.len(), 8);
        assert_eq!(
            FMNERG_TYPE_TREE.iter().map(|(_, f)| f.len()).sum::<usize>(),
            51
        );
        assert_eq!(coarse_of("athlete"), Some("person"));
        assert_eq!(coarse_of("stadium"), None);
    }
}
