//! The fulfilment network from `network.toml`: sites (location, capacity, backlog
//! limit), destination regions, and carriers with the lanes they serve.
//!
//! The network is reference data, not history: it changes by editing the file. The
//! simulator writes one, the trainer reads the one beside the CSV files, and the
//! server loads `models/network.toml`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A fulfilment site (warehouse, DC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Location code that events and requests use for the site (e.g. "ATL").
    pub code: String,
    /// Display name; empty when the file gives none.
    #[serde(default)]
    pub name: String,
    /// Macro-region the site sits in (e.g. "SE").
    #[serde(default)]
    pub region: String,
    /// Latitude in degrees, for distances.
    pub lat: f64,
    /// Longitude in degrees, for distances.
    pub lon: f64,
    /// Orders per hour the site picks at full labour.
    pub capacity_per_hour: f64,
    /// Orders waiting above which the site's queue breaches its SLA.
    pub backlog_limit: f64,
    /// Cost of picking and packing one order here.
    #[serde(default)]
    pub handling_cost: f64,
}

/// A destination region that shipments go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Location code that orders and shipments use for the region (e.g. "JFK").
    pub code: String,
    /// Macro-region (e.g. "NE"), shared by nearby destinations.
    #[serde(default)]
    pub area: String,
    /// Latitude in degrees, for distances.
    pub lat: f64,
    /// Longitude in degrees, for distances.
    pub lon: f64,
}

/// One lane a carrier serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    /// Location code the lane leaves from, usually a site.
    pub origin: String,
    /// Location code the lane goes to, a site or a region.
    pub destination: String,
    /// Price of one shipment on this lane.
    pub rate: f64,
    /// Published transit time, in hours.
    pub transit_hours: f64,
}

/// A carrier and its lanes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carrier {
    /// Carrier code that shipments use (e.g. "XPO").
    pub code: String,
    /// Display name; empty when the file gives none.
    #[serde(default)]
    pub name: String,
    /// The lanes it serves, with their prices and transit times.
    #[serde(default)]
    pub lanes: Vec<Lane>,
}

/// The whole network, with lookups by code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Fulfilment sites; codes are unique.
    #[serde(default)]
    pub sites: Vec<Site>,
    /// Destination regions.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Carriers, in the order offers are listed.
    #[serde(default)]
    pub carriers: Vec<Carrier>,
    #[serde(skip)]
    site_index: FastMap<usize>,
    #[serde(skip)]
    region_index: FastMap<usize>,
    /// origin → destination → (carrier index, lane index) of every carrier serving it.
    #[serde(skip)]
    lane_index: FastMap<FastMap<Vec<(usize, usize)>>>,
}

/// Great-circle distance between two (latitude, longitude) points, in km.
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1, lat2, lon2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// Lookups by code sit on hot paths: a fast, non-cryptographic hasher.
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// One carrier's offer on a lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneOffer<'a> {
    /// The carrier making the offer.
    pub carrier: &'a Carrier,
    /// Its lane, with the price and transit time.
    pub lane: &'a Lane,
}

/// Why a network file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The file could not be read.
    #[error("cannot read network file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("network file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML error.
        source: toml::de::Error,
    },
    /// The file parses but breaks a rule (a repeated site code, a capacity,
    /// backlog limit or transit time not positive, a negative rate).
    #[error("network file {path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The first rule broken.
        problem: String,
    },
}

impl Network {
    /// Builds a network from its parts and indexes it.
    pub fn new(sites: Vec<Site>, regions: Vec<Region>, carriers: Vec<Carrier>) -> Self {
        let mut network = Network {
            sites,
            regions,
            carriers,
            ..Network::default()
        };
        network.reindex();
        network
    }

    /// Reads and checks a `network.toml`.
    pub fn load(path: &Path) -> Result<Self, NetworkError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| NetworkError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut network: Network = toml::from_str(&text).map_err(|source| NetworkError::Parse {
            path: shown.clone(),
            source,
        })?;
        network.reindex();
        network.check().map_err(|problem| NetworkError::Invalid {
            path: shown,
            problem,
        })?;
        Ok(network)
    }

    /// The network as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a network always serialises")
    }

    /// The site with this code, if the network knows it.
    pub fn site(&self, code: &str) -> Option<&Site> {
        self.site_index.get(code).map(|&i| &self.sites[i])
    }

    /// The destination region with this code, if the network knows it.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.region_index.get(code).map(|&i| &self.regions[i])
    }

    /// Every carrier's offer on origin → destination, in carrier order.
    pub fn offers(&self, origin: &str, destination: &str) -> Vec<LaneOffer<'_>> {
        self.lane_entries(origin, destination)
            .map(|entries| {
                entries
                    .iter()
                    .map(|&(c, l)| LaneOffer {
                        carrier: &self.carriers[c],
                        lane: &self.carriers[c].lanes[l],
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The fastest published transit on origin → destination, in hours.
    pub fn fastest_transit_hours(&self, origin: &str, destination: &str) -> Option<f64> {
        self.lane_entries(origin, destination)?
            .iter()
            .map(|&(c, l)| self.carriers[c].lanes[l].transit_hours)
            .min_by(f64::total_cmp)
    }

    /// Great-circle distance between a site and a site or region, in km.
    pub fn distance_km(&self, from: &str, to: &str) -> Option<f64> {
        let point = |code: &str| {
            self.site(code)
                .map(|s| (s.lat, s.lon))
                .or_else(|| self.region(code).map(|r| (r.lat, r.lon)))
        };
        Some(great_circle_km(point(from)?, point(to)?))
    }

    fn lane_entries(&self, origin: &str, destination: &str) -> Option<&Vec<(usize, usize)>> {
        self.lane_index.get(origin)?.get(destination)
    }

    fn reindex(&mut self) {
        self.site_index = self
            .sites
            .iter()
            .enumerate()
            .map(|(i, site)| (site.code.clone(), i))
            .collect();
        self.region_index = self
            .regions
            .iter()
            .enumerate()
            .map(|(i, region)| (region.code.clone(), i))
            .collect();
        self.lane_index = FastMap::default();
        for (c, carrier) in self.carriers.iter().enumerate() {
            for (l, lane) in carrier.lanes.iter().enumerate() {
                self.lane_index
                    .entry(lane.origin.clone())
                    .or_default()
                    .entry(lane.destination.clone())
                    .or_default()
                    .push((c, l));
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.site_index.len() != self.sites.len() {
            return Err("two sites share a code".into());
        }
        for site in &self.sites {
            if !(site.capacity_per_hour > 0.0 && site.backlog_limit > 0.0) {
                return Err(format!(
                    "site {}: capacity_per_hour and backlog_limit must be positive",
                    site.code
                ));
            }
        }
        for carrier in &self.carriers {
            for lane in &carrier.lanes {
                if !(lane.rate >= 0.0 && lane.transit_hours > 0.0) {
                    return Err(format!(
                        "carrier {} lane {}→{}: rate must be ≥ 0 and transit_hours > 0",
                        carrier.code, lane.origin, lane.destination
                    ));
                }
            }
        }
        Ok(())
    }
}
