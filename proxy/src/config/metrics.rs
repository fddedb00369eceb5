//! The `metrics:` block: where Istio's workload labels come from. Shardcar knows its own
//! workload and service only from config (Istio's agent injects them from pod metadata):
//!
//! ```yaml
//! metrics:
//!   workload: reviews-v1                          # default "unknown"
//!   service: reviews.default.svc.cluster.local    # destination_service on inbound
//!   outbound_listeners: [outbound]                # reporter="source"; others "destination"
//!   istio: true                                   # false: no istio_* series (default true)
//! ```
//! `istio: false` is Istio's Telemetry API with metrics disabled: no `istio_*` series are
//! kept; the `shardcar_*` operational stats stay (like Envoy's, they cannot be turned off).
//! Without the block every workload label is `unknown`, `destination_service` is the
//! cluster's name, and listeners whose name starts with `outbound` report as `source`.

use serde::Deserialize;

use super::{ConfigError, Listener};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub workload: Option<String>,
    pub service: Option<String>,
    pub outbound_listeners: Option<Vec<String>>,
    pub istio: Option<bool>,
}

/// Typed metrics labels settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// This proxy's workload name (`source_workload` on outbound, `destination_workload` on
    /// inbound).
    pub workload: String,
    /// `destination_service` for inbound requests; `None` uses the cluster name.
    pub service: Option<String>,
    /// Per listener (indexed like `listeners`): true when it carries outbound traffic.
    pub outbound: Vec<bool>,
    /// Istio's standard metrics kept (`metrics.istio`, default true).
    pub istio: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            workload: "unknown".into(),
            service: None,
            outbound: Vec::new(),
            istio: true,
        }
    }
}

impl MetricsSettings {
    pub fn is_outbound(&self, listener: usize) -> bool {
        self.outbound.get(listener).copied().unwrap_or(false)
    }
}

pub fn build_metrics(
    raw: &Option<RawMetrics>,
    listeners: &[Listener],
) -> Result<MetricsSettings, ConfigError> {
    let empty = |field: &str, v: &Option<String>| match v {
        Some(s) if s.trim().is_empty() => Err(ConfigError::new(
            format!("metrics.{field}"),
            "must not be empty",
        )),
        _ => Ok(()),
    };
    let (workload, service, named) = match raw {
        None => (None, None, None),
        Some(r) => {
            empty("workload", &r.workload)?;
            empty("service", &r.service)?;
            (
                r.workload.clone(),
                r.service.clone(),
                r.outbound_listeners.as_ref(),
            )
        }
    };
    let outbound = match named {
        Some(names) => {
            for (i, n) in names.iter().enumerate() {
                if !listeners.iter().any(|l| &l.name == n) {
                    return Err(ConfigError::new(
                        format!("metrics.outbound_listeners[{i}]"),
                        format!("no listener named {n:?}"),
                    ));
                }
            }
            listeners.iter().map(|l| names.contains(&l.name)).collect()
        }
        None => listeners
            .iter()
            .map(|l| l.name.starts_with("outbound"))
            .collect(),
    };
    Ok(MetricsSettings {
        workload: workload.unwrap_or_else(|| "unknown".into()),
        service,
        outbound,
        istio: raw.as_ref().and_then(|r| r.istio).unwrap_or(true),
    })
}
