//! The glass catalogue: which glass a pour's volume fills.
//!
//! Bands are inclusive at both ends and matched first-to-last in ascending order, as the
//! prototype did: with `half` 100..=300 and `pint` 300..=800, a 300 ml pour is a `half`.
//! Two bands may touch at one point, never overlap beyond it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One kind of glass and the volumes (ml) that count as it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "pint", "min": 300.0, "max": 800.0, "nominal": 568.0}))]
pub struct Glass {
    /// The name pours are classified under, e.g. `pint`.
    #[schema(value_type = String)]
    pub name: Arc<str>,
    /// Smallest volume in ml, inclusive.
    pub min: f64,
    /// Largest volume in ml, inclusive.
    pub max: f64,
    /// The serving the glass is meant to hold (ml), inside its band; pours more than the
    /// over-pour tolerance above it are flagged. None: never an over-pour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nominal: Option<f64>,
}

/// The type of a pour whose volume no glass holds; no glass may take the name.
pub const UNCLASSIFIED: &str = "unclassified";

/// Why a catalogue was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read glass catalogue {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is neither a JSON list nor a TOML `[[glass]]` table list.
    #[error("cannot parse glass catalogue {path}: {message}")]
    Parse { path: String, message: String },
    /// No glasses at all.
    #[error("the glass catalogue is empty")]
    Empty,
    /// A band holds no volume, or has a bound that is negative or not a number.
    #[error(
        "glass {name:?} has an empty or invalid band: min {min}, max {max} (need 0 <= min < max)"
    )]
    EmptyBand { name: String, min: f64, max: f64 },
    /// A name is blank, used twice, or the reserved `unclassified`.
    #[error("glass name {0:?} is blank, used more than once, or reserved (\"unclassified\")")]
    BadName(String),
    /// A nominal serving outside the glass's band.
    #[error("glass {name:?} has nominal {nominal} ml outside its band {min} to {max} ml")]
    BadNominal {
        name: String,
        nominal: f64,
        min: f64,
        max: f64,
    },
    /// Two bands share more than a boundary point.
    #[error(
        "glasses {lower:?} ({lower_min} to {lower_max} ml) and {upper:?} ({upper_min} to {upper_max} ml) overlap"
    )]
    Overlap {
        lower: String,
        lower_min: f64,
        lower_max: f64,
        upper: String,
        upper_min: f64,
        upper_max: f64,
    },
}

/// The configured glasses, sorted by volume.
#[derive(Debug, Clone)]
pub struct Catalogue {
    glasses: Vec<Glass>,
    /// [`UNCLASSIFIED`], shared by every pour that has it.
    unclassified: Arc<str>,
}

#[derive(Deserialize)]
struct TomlCatalogue {
    glass: Vec<Glass>,
}

impl Catalogue {
    /// Validates a list of glasses: non-empty, unique names, non-empty bands, no overlaps.
    pub fn new(mut glasses: Vec<Glass>) -> Result<Catalogue, CatalogueError> {
        if glasses.is_empty() {
            return Err(CatalogueError::Empty);
        }
        for (i, glass) in glasses.iter().enumerate() {
            let blank = glass.name.trim().is_empty();
            let taken = glasses[..i].iter().any(|g| g.name == glass.name);
            if blank || taken || &*glass.name == UNCLASSIFIED {
                return Err(CatalogueError::BadName(glass.name.to_string()));
            }
            // `!(a < b)` rather than `a >= b` so that NaN bounds are refused too.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let empty = !(glass.min >= 0.0 && glass.min < glass.max && glass.max.is_finite());
            if empty {
                return Err(CatalogueError::EmptyBand {
                    name: glass.name.to_string(),
                    min: glass.min,
                    max: glass.max,
                });
            }
            if let Some(nominal) = glass.nominal
                && !(glass.min..=glass.max).contains(&nominal)
            {
                return Err(CatalogueError::BadNominal {
                    name: glass.name.to_string(),
                    nominal,
                    min: glass.min,
                    max: glass.max,
                });
            }
        }
        glasses.sort_by(|a, b| a.min.total_cmp(&b.min));
        for pair in glasses.windows(2) {
            let (lower, upper) = (&pair[0], &pair[1]);
            if upper.min < lower.max {
                return Err(CatalogueError::Overlap {
                    lower: lower.name.to_string(),
                    lower_min: lower.min,
                    lower_max: lower.max,
                    upper: upper.name.to_string(),
                    upper_min: upper.min,
                    upper_max: upper.max,
                });
            }
        }
        Ok(Catalogue {
            glasses,
            unclassified: UNCLASSIFIED.into(),
        })
    }

    /// Reads a catalogue file: a JSON list of `{name, min, max}`, or TOML with one
    /// `[[glass]]` table per glass. The extension picks the format (`.json`, `.toml`).
    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: shown.clone(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let glasses = if is_toml {
            toml::from_str::<TomlCatalogue>(&text)
                .map(|c| c.glass)
                .map_err(|e| e.to_string())
        } else {
            serde_json::from_str::<Vec<Glass>>(&text).map_err(|e| e.to_string())
        };
        let glasses = glasses.map_err(|message| CatalogueError::Parse {
            path: shown,
            message: message.trim().to_owned(),
        })?;
        Catalogue::new(glasses)
    }

    /// The glasses, smallest first.
    pub fn glasses(&self) -> &[Glass] {
        &self.glasses
    }

    /// The first glass whose band holds `volume`, if any.
    pub fn classify(&self, volume: f64) -> Option<&Glass> {
        self.glasses
            .iter()
            .find(|g| g.min <= volume && volume <= g.max)
    }

    /// The type of pours no glass holds, as a shared name.
    pub fn unclassified(&self) -> Arc<str> {
        self.unclassified.clone()
    }

    /// The glass called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&Glass> {
        self.glasses.iter().find(|g| &*g.name == name)
    }

    /// Position of the glass called `name` in [`Catalogue::glasses`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.glasses.iter().position(|g| &*g.name == name)
    }

    /// The glass names, comma separated, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.glasses.iter().map(|g| &*g.name).collect();
        names.join(", ")
    }

    /// The volumes accepted, e.g. `100 to 1000 ml`, or `100 to 300, 400 to 1000 ml` with gaps.
    pub fn accepted(&self) -> Accepted<'_> {
        Accepted(self)
    }
}

/// Display of the accepted volume ranges; see [`Catalogue::accepted`].
pub struct Accepted<'a>(&'a Catalogue);

impl fmt::Display for Accepted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges: Vec<(f64, f64)> = Vec::new();
        for glass in &self.0.glasses {
            match ranges.last_mut() {
                Some(last) if last.1 >= glass.min => last.1 = glass.max,
                _ => ranges.push((glass.min, glass.max)),
            }
        }
        for (i, (min, max)) in ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{min} to {max}")?;
        }
        f.write_str(" ml")
    }
}

impl Default for Catalogue {
    /// The prototype's glasses: half 100 to 300 ml, pint to 800 ml, stein to 1000 ml;
    /// served as an imperial half pint (284 ml), a pint (568 ml) and a litre.
    fn default() -> Catalogue {
        let glass = |name: &str, min, max, nominal| Glass {
            name: name.into(),
            min,
            max,
            nominal: Some(nominal),
        };
        Catalogue {
            glasses: vec![
                glass("half", 100.0, 300.0, 284.0),
                glass("pint", 300.0, 800.0, 568.0),
                glass("stein", 800.0, 1000.0, 1000.0),
            ],
            unclassified: UNCLASSIFIED.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(volume: f64) -> Option<String> {
        Catalogue::default()
            .classify(volume)
            .map(|g| g.name.to_string())
    }

    #[test]
    fn default_bands_follow_the_prototype_first_match_rule() {
        assert_eq!(name_of(100.0).as_deref(), Some("half"));
        assert_eq!(name_of(300.0).as_deref(), Some("half"));
        assert_eq!(name_of(300.01).as_deref(), Some("pint"));
        assert_eq!(name_of(800.0).as_deref(), Some("pint"));
        assert_eq!(name_of(800.5).as_deref(), Some("stein"));
        assert_eq!(name_of(1000.0).as_deref(), Some("stein"));
    }

    #[test]
    fn volumes_outside_every_band_have_no_glass() {
        for v in [99.9, 1000.1, -5.0, 0.0, f64::NAN, f64::INFINITY] {
            assert_eq!(name_of(v), None, "{v}");
        }
    }

    #[test]
    fn default_catalogue_is_valid() {
        let glasses = Catalogue::default().glasses().to_vec();
        assert!(Catalogue::new(glasses).is_ok());
    }

    #[test]
    fn overlapping_bands_are_refused() {
        let err = Catalogue::new(vec![
            Glass {
                name: "a".into(),
                min: 100.0,
                max: 400.0,
                nominal: None,
            },
            Glass {
                name: "b".into(),
                min: 300.0,
                max: 800.0,
                nominal: None,
            },
        ])
        .unwrap_err();
        assert!(matches!(err, CatalogueError::Overlap { .. }), "{err}");
        assert!(err.to_string().contains("overlap"));
    }

    #[test]
    fn empty_and_nonsense_bands_are_refused() {
        for (min, max) in [(500.0, 500.0), (600.0, 500.0), (-1.0, 5.0), (f64::NAN, 5.0)] {
            let err = Catalogue::new(vec![Glass {
                name: "x".into(),
                min,
                max,
                nominal: None,
            }])
            .unwrap_err();
            assert!(
                matches!(err, CatalogueError::EmptyBand { .. }),
                "{min} {max}"
            );
        }
        assert!(matches!(
            Catalogue::new(vec![]).unwrap_err(),
            CatalogueError::Empty
        ));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let g = |min, max| Glass {
            name: "pint".into(),
            min,
            max,
            nominal: None,
        };
        let err = Catalogue::new(vec![g(1.0, 2.0), g(3.0, 4.0)]).unwrap_err();
        assert!(matches!(err, CatalogueError::BadName(_)));
        let reserved = Glass {
            name: UNCLASSIFIED.into(),
            ..g(1.0, 2.0)
        };
        let err = Catalogue::new(vec![reserved]).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn a_nominal_serving_must_lie_in_its_band() {
        let g = |nominal| Glass {
            name: "pint".into(),
            min: 300.0,
            max: 800.0,
            nominal: Some(nominal),
        };
        assert!(Catalogue::new(vec![g(568.0)]).is_ok());
        assert!(Catalogue::new(vec![g(300.0)]).is_ok());
        for bad in [299.0, 800.5, f64::NAN] {
            let err = Catalogue::new(vec![g(bad)]).unwrap_err();
            assert!(matches!(err, CatalogueError::BadNominal { .. }), "{bad}");
        }
        let toml = "[[glass]]\nname = \"pint\"\nmin = 300\nmax = 800\nnominal = 473\n";
        let parsed: TomlCatalogue = toml::from_str(toml).unwrap();
        assert_eq!(parsed.glass[0].nominal, Some(473.0));
    }

    #[test]
    fn accepted_ranges_merge_touching_bands_and_show_gaps() {
        assert_eq!(
            Catalogue::default().accepted().to_string(),
            "100 to 1000 ml"
        );
        let c = Catalogue::new(vec![
            Glass {
                name: "a".into(),
                min: 100.0,
                max: 300.0,
                nominal: None,
            },
            Glass {
                name: "b".into(),
                min: 400.0,
                max: 1000.0,
                nominal: None,
            },
        ])
        .unwrap();
        assert_eq!(c.accepted().to_string(), "100 to 300, 400 to 1000 ml");
    }

    #[test]
    fn loads_json_and_toml_files() {
        let dir = std::env::temp_dir().join(format!("altair-glass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("g.json");
        std::fs::write(&json, r#"[{"name":"shot","min":20,"max":50}]"#).unwrap();
        assert_eq!(&*Catalogue::load(&json).unwrap().glasses()[0].name, "shot");
        let toml = dir.join("g.toml");
        std::fs::write(&toml, "[[glass]]\nname = \"shot\"\nmin = 20\nmax = 50\n").unwrap();
        assert_eq!(Catalogue::load(&toml).unwrap().glasses()[0].max, 50.0);
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "[{\"name\": 1}]").unwrap();
        assert!(matches!(
            Catalogue::load(&bad).unwrap_err(),
            CatalogueError::Parse { .. }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        /// Classification is the first band, in ascending order, that holds the volume.
        #[test]
        fn classification_is_first_match(volume in -100.0f64..1200.0) {
            let catalogue = Catalogue::default();
            let expected = catalogue
                .glasses()
                .iter()
                .find(|g| g.min <= volume && volume <= g.max);
            proptest::prop_assert_eq!(catalogue.classify(volume), expected);
            if let Some(glass) = catalogue.classify(volume) {
                proptest::prop_assert!(glass.min <= volume && volume <= glass.max);
            }
        }
    }
}
