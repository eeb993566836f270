//! The simulated network: eight US fulfilment sites, sixteen destination regions,
//! eight carriers serving a seeded subset of the lanes between them, each with
//! its own reliability on each lane.

use std::collections::BTreeMap;

use detour::network::{Carrier, Lane, Network, Region, Site};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// (code, lat, lon, area) of each site.
const SITES: [(&str, f64, f64, &str); 8] = [
    ("ATL", 33.64, -84.43, "SE"),
    ("DFW", 32.90, -97.04, "SW"),
    ("ORD", 41.97, -87.91, "MW"),
    ("LAX", 33.94, -118.41, "W"),
    ("EWR", 40.69, -74.17, "NE"),
    ("SEA", 47.45, -122.31, "NW"),
    ("MEM", 35.04, -89.98, "SE"),
    ("PHX", 33.43, -112.01, "SW"),
];

/// (code, lat, lon, area) of each destination region.
const REGIONS: [(&str, f64, f64, &str); 16] = [
    ("JFK", 40.64, -73.78, "NE"),
    ("BOS", 42.36, -71.01, "NE"),
    ("PHL", 39.87, -75.24, "NE"),
    ("DCA", 38.85, -77.04, "NE"),
    ("MIA", 25.79, -80.29, "SE"),
    ("CLT", 35.21, -80.94, "SE"),
    ("MCO", 28.43, -81.31, "SE"),
    ("DTW", 42.21, -83.35, "MW"),
    ("MSP", 44.88, -93.22, "MW"),
    ("STL", 38.75, -90.37, "MW"),
    ("DEN", 39.86, -104.67, "W"),
    ("IAH", 29.99, -95.34, "SW"),
    ("AUS", 30.19, -97.67, "SW"),
    ("SFO", 37.62, -122.38, "W"),
    ("SAN", 32.73, -117.19, "W"),
    ("PDX", 45.59, -122.60, "NW"),
];

const CARRIERS: [&str; 8] = ["UPS", "FDX", "XPO", "ODFL", "SAIA", "ESTES", "DHL", "RLC"];

/// The network plus what only the simulator knows about it.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    pub network: Network,
    /// Base demand, orders per hour, per site (in `network.sites` order).
    pub site_demand: Vec<f64>,
    /// Orders one person picks per hour.
    pub productivity: f64,
    /// Peak labour per site.
    pub peak_labour: Vec<f64>,
    /// Share of each site's orders going to each region (rows sum to 1).
    pub region_mix: Vec<Vec<f64>>,
    /// Long-run failure log-odds of each (carrier, site, region) lane served.
    pub lane_logit: BTreeMap<(usize, usize, usize), f64>,
    /// Area of each site and each region, for disruptions.
    pub site_area: Vec<&'static str>,
    pub region_area: Vec<&'static str>,
    /// Fastest published transit per (site, region), for promises.
    pub best_transit: Vec<Vec<f64>>,
}

use detour::network::great_circle_km as distance_km;

/// The sixteen destination regions.
fn regions() -> Vec<Region> {
    REGIONS
        .iter()
        .map(|&(code, lat, lon, area)| Region {
            code: code.into(),
            area: area.into(),
            lat,
            lon,
        })
        .collect()
}

/// Builds the network for `orders_per_day` across all sites.
pub fn generate(rng: &mut StdRng, orders_per_day: f64) -> SimNetwork {
    let productivity = 4.0;
    let weights: Vec<f64> = (0..SITES.len()).map(|_| rng.gen_range(0.7..1.3)).collect();
    let total: f64 = weights.iter().sum();
    let site_demand: Vec<f64> = weights
        .iter()
        .map(|w| orders_per_day / 24.0 * w / total)
        .collect();
    // Peak-hour demand is ~1.7× the mean; staff below it, so afternoons queue.
    let peak_labour: Vec<f64> = site_demand
        .iter()
        .map(|d| (d * 1.45 / productivity).ceil())
        .collect();
    let handling: Vec<f64> = (0..SITES.len())
        .map(|_| (rng.gen_range(4.0..9.0) * 100.0f64).round() / 100.0)
        .collect();
    let sites: Vec<Site> = SITES
        .iter()
        .zip(&peak_labour)
        .zip(&handling)
        .map(|((&(code, lat, lon, area), labour), &handling_cost)| {
            let capacity = labour * productivity;
            Site {
                code: code.into(),
                name: format!("{code} fulfilment centre"),
                region: area.into(),
                lat,
                lon,
                capacity_per_hour: capacity,
                backlog_limit: (capacity * 3.0).round(),
                handling_cost,
            }
        })
        .collect();
    let regions = regions();
    let region_mix = SITES
        .iter()
        .map(|&(_, lat, lon, _)| {
            let raw: Vec<f64> = REGIONS
                .iter()
                .map(|&(_, rlat, rlon, _)| {
                    1.0 / (1.0 + distance_km((lat, lon), (rlat, rlon)) / 800.0)
                })
                .collect();
            let sum: f64 = raw.iter().sum();
            raw.into_iter().map(|w| w / sum).collect()
        })
        .collect();

    let quality = Normal::new(0.0, 0.6).expect("valid normal");
    let lane_noise = Normal::new(0.0, 0.6).expect("valid normal");
    let mut carriers: Vec<Carrier> = CARRIERS
        .iter()
        .map(|code| Carrier {
            code: (*code).into(),
            name: (*code).into(),
            lanes: Vec::new(),
        })
        .collect();
    let carrier_quality: Vec<f64> = CARRIERS.iter().map(|_| quality.sample(rng)).collect();
    let carrier_speed: Vec<f64> = CARRIERS.iter().map(|_| rng.gen_range(0.85..1.15)).collect();
    let carrier_price: Vec<f64> = CARRIERS.iter().map(|_| rng.gen_range(0.8..1.3)).collect();
    let mut lane_logit = BTreeMap::new();
    let mut best_transit = vec![vec![f64::INFINITY; REGIONS.len()]; SITES.len()];
    for (s, &(site, slat, slon, _)) in SITES.iter().enumerate() {
        for (r, &(region, rlat, rlon, _)) in REGIONS.iter().enumerate() {
            let km = distance_km((slat, slon), (rlat, rlon));
            // Every lane gets at least two carriers; the rest join at random.
            let mut served: Vec<usize> =
                (0..CARRIERS.len()).filter(|_| rng.gen_bool(0.55)).collect();
            while served.len() < 2 {
                let c = rng.gen_range(0..CARRIERS.len());
                if !served.contains(&c) {
                    served.push(c);
                }
            }
            served.sort_unstable();
            for c in served {
                let transit = ((km / 75.0) * carrier_speed[c] + 10.0).round();
                let rate = ((25.0 + 0.06 * km) * carrier_price[c] * 100.0).round() / 100.0;
                // Cheap carriers are a little less reliable; long lanes fail more.
                let logit = -2.5 + carrier_quality[c] + lane_noise.sample(rng) + 0.12 * km / 1000.0
                    - 0.6 * (carrier_price[c] - 1.0);
                lane_logit.insert((c, s, r), logit);
                best_transit[s][r] = best_transit[s][r].min(transit);
                carriers[c].lanes.push(Lane {
                    origin: site.into(),
                    destination: region.into(),
                    rate,
                    transit_hours: transit,
                });
            }
        }
    }
    SimNetwork {
        network: Network::new(sites, regions, carriers),
        site_demand,
        productivity,
        peak_labour,
        region_mix,
        lane_logit,
        site_area: SITES.iter().map(|s| s.3).collect(),
        region_area: REGIONS.iter().map(|r| r.3).collect(),
        best_transit,
    }
}

/// A synthetic network for benchmarks: `sites` sites scattered over the
/// continental US, the sixteen destination regions, and `carriers` carriers that
/// all serve every lane from every site.
pub fn benchmark_network(rng: &mut StdRng, sites: usize, carriers: usize) -> Network {
    let site_list: Vec<Site> = (0..sites)
        .map(|i| {
            let capacity = rng.gen_range(20.0..60.0f64).round();
            Site {
                code: format!("B{i:02}"),
                name: format!("benchmark site {i}"),
                region: String::new(),
                lat: rng.gen_range(26.0..48.0),
                lon: rng.gen_range(-122.0..-72.0),
                capacity_per_hour: capacity,
                backlog_limit: capacity * 3.0,
                handling_cost: (rng.gen_range(4.0..9.0) * 100.0f64).round() / 100.0,
            }
        })
        .collect();
    let regions = regions();
    let carrier_list = (0..carriers)
        .map(|c| Carrier {
            code: format!("K{c}"),
            name: format!("benchmark carrier {c}"),
            lanes: site_list
                .iter()
                .flat_map(|site| {
                    regions.iter().map(move |region| {
                        let km = distance_km((site.lat, site.lon), (region.lat, region.lon));
                        (site.code.clone(), region.code.clone(), km)
                    })
                })
                .map(|(origin, destination, km)| Lane {
                    origin,
                    destination,
                    rate: ((25.0 + 0.06 * km) * (1.0 + c as f64 * 0.03) * 100.0).round() / 100.0,
                    transit_hours: (km / 75.0 + 10.0 + c as f64 % 3.0).round(),
                })
                .collect(),
        })
        .collect();
    Network::new(site_list, regions, carrier_list)
}
