//! `detour admin …`: a data scientist's commands against a running server's
//! `ModelAdmin` service. The token comes from `DETOUR_ADMIN_TOKEN`; who acts
//! is `$USER` unless `--as` says otherwise.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use detour::pb;
use detour::pb::model_admin_client::ModelAdminClient;
use tonic::transport::Channel;

/// Options every admin command takes.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:50051", global = true)]
    server: String,
    /// The admin token.
    #[arg(
        long,
        env = "DETOUR_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Who acts, for the audit log [default: $USER].
    #[arg(long = "as", global = true)]
    actor: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Every family's versions, their states, the running comparison and the
    /// last admin actions.
    Models,
    /// Deploys the artifact in DIR (a version folder: manifest.json, weights,
    /// golden rows, reports): checked, loaded and warmed without traffic.
    Deploy {
        /// The version folder (sent as bytes; the server need not see it).
        dir: PathBuf,
        /// Start as the family's shadow.
        #[arg(long, conflicts_with = "canary")]
        shadow: bool,
        /// Start as its canary for this percentage of entities.
        #[arg(long, value_name = "PCT")]
        canary: Option<f64>,
        /// Deploy although its held-out metrics are worse (recorded).
        #[arg(long)]
        force: bool,
        /// Promote automatically once better on at least this many outcomes …
        #[arg(long, value_name = "N")]
        auto_promote_after: Option<u64>,
        /// … by more than this many standard errors.
        #[arg(long, default_value_t = 2.0)]
        sigmas: f64,
    },
    /// Makes a version active.
    Promote { family: String, version: String },
    /// Back to the previous active version.
    Rollback { family: String },
    /// Scores every request with VERSION too (no VERSION: stop comparing).
    Shadow {
        family: String,
        version: Option<String>,
    },
    /// VERSION answers PCT percent of entities (sticky by entity id).
    Canary {
        family: String,
        version: String,
        percent: f64,
    },
    /// Forgets a version that neither serves nor is compared.
    Unload { family: String, version: String },
    /// The candidate against the active version on outcomes.
    Compare { family: String },
}

/// Runs one admin command.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

struct Caller {
    client: ModelAdminClient<Channel>,
    token: String,
    actor: String,
}

impl Caller {
    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if self.token.is_empty() {
            // The server says what is missing.
            return Ok(request);
        }
        metadata.insert(
            "authorization",
            format!("Bearer {}", self.token)
                .parse()
                .context("the token is not valid metadata")?,
        );
        if let Ok(actor) = self.actor.parse() {
            metadata.insert(detour::api::admin::USER_HEADER, actor);
        }
        Ok(request)
    }
}

fn status(error: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", error.code(), error.message())
}

async fn run_async(args: AdminArgs) -> anyhow::Result<()> {
    let endpoint = Channel::from_shared(format!("http://{}", args.server))?;
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", args.server))?;
    let client = ModelAdminClient::new(channel)
        .max_encoding_message_size(32 << 20)
        .max_decoding_message_size(32 << 20);
    let mut caller = Caller {
        client,
        token: args.token.unwrap_or_default(),
        actor: args
            .actor
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "admin".into()),
    };
    match args.command {
        AdminCommand::Models => {
            let request = caller.request(pb::ListModelsRequest {})?;
            let list = caller
                .client
                .list_models(request)
                .await
                .map_err(status)?
                .into_inner();
            print_list(&list);
        }
        AdminCommand::Deploy {
            dir,
            shadow,
            canary,
            force,
            auto_promote_after,
            sigmas,
        } => {
            let files = detour::models::ArtifactFiles::read_dir(&dir)?;
            let request = caller.request(pb::DeployModelRequest {
                files: files
                    .files
                    .into_iter()
                    .map(|(name, content)| pb::ArtifactFile { name, content })
                    .collect(),
                force,
                shadow,
                canary_percent: canary.unwrap_or(0.0),
                auto_promote: auto_promote_after.map(|n| pb::AutoPromote {
                    min_outcomes: n,
                    sigmas,
                }),
                ..Default::default()
            })?;
            let answer = caller
                .client
                .deploy_model(request)
                .await
                .map_err(status)?
                .into_inner();
            if answer.already_deployed {
                println!(
                    "{} {} was already deployed with the same content",
                    answer.family, answer.version
                );
            } else {
                println!("deployed {} {}", answer.family, answer.version);
            }
            if !answer.forced_past.is_empty() {
                println!("forced past: {}", answer.forced_past);
            }
            if let Some(state) = &answer.state {
                print_family(state);
            }
        }
        AdminCommand::Promote { family, version } => {
            let request = caller.request(pb::PromoteModelRequest { family, version })?;
            let answer = caller.client.promote_model(request).await;
            print_change(answer)?;
        }
        AdminCommand::Rollback { family } => {
            let request = caller.request(pb::RollbackModelRequest { family })?;
            let answer = caller.client.rollback_model(request).await;
            print_change(answer)?;
        }
        AdminCommand::Shadow { family, version } => {
            let request = caller.request(pb::SetShadowRequest {
                family,
                version: version.unwrap_or_default(),
                auto_promote: None,
            })?;
            let answer = caller.client.set_shadow(request).await;
            print_change(answer)?;
        }
        AdminCommand::Canary {
            family,
            version,
            percent,
        } => {
            let request = caller.request(pb::SetCanaryRequest {
                family,
                version,
                percent,
                auto_promote: None,
            })?;
            let answer = caller.client.set_canary(request).await;
            print_change(answer)?;
        }
        AdminCommand::Unload { family, version } => {
            let request = caller.request(pb::UnloadModelRequest { family, version })?;
            let answer = caller.client.unload_model(request).await;
            print_change(answer)?;
        }
        AdminCommand::Compare { family } => {
            let request = caller.request(pb::CompareModelsRequest { family })?;
            let comparison = caller
                .client
                .compare_models(request)
                .await
                .map_err(status)?
                .into_inner();
            print_comparison(&comparison);
        }
    }
    Ok(())
}

fn print_change(
    answer: Result<tonic::Response<pb::ModelChangeResponse>, tonic::Status>,
) -> anyhow::Result<()> {
    let answer = answer.map_err(status)?.into_inner();
    println!("{}", answer.detail);
    if let Some(state) = &answer.state {
        print_family(state);
    }
    Ok(())
}

fn print_list(list: &pb::ListModelsResponse) {
    let stale = if list.registry_stale {
        format!(" — STALE: {}", list.stale_reason)
    } else {
        String::new()
    };
    println!("registry: {}{stale}", list.backend);
    for family in &list.families {
        print_family(family);
    }
    if !list.recent_actions.is_empty() {
        println!("\nrecent admin actions (newest first):");
        for a in list.recent_actions.iter().take(10) {
            let at = a.at.as_ref().map(|t| t.to_string()).unwrap_or_default();
            println!(
                "  {at}  {:<8} {:<9} {} {} {}: {}",
                a.who, a.action, a.family, a.version, a.outcome, a.detail
            );
        }
    }
}

fn print_family(family: &pb::FamilyModels) {
    println!("\n{}", family.family);
    for v in &family.versions {
        let mut state = v.state.clone();
        if state == "canary" {
            state = format!("canary {} %", family.canary_percent);
        }
        let metric = |m: &str| {
            v.metrics
                .get(m)
                .map_or("-".to_string(), |x| format!("{x:.4}"))
        };
        println!(
            "  {:<20} {:<14} roc_auc {} brier {} log_loss {}  by {}{}{}",
            v.version,
            state,
            metric("roc_auc"),
            metric("brier"),
            metric("log_loss"),
            if v.deployed_by.is_empty() {
                "-"
            } else {
                &v.deployed_by
            },
            if v.forced { " (forced)" } else { "" },
            if v.refused_reason.is_empty() {
                String::new()
            } else {
                format!(" refused: {}", v.refused_reason)
            }
        );
    }
    if let Some(c) = &family.comparison {
        print_comparison(c);
    }
}

fn print_comparison(c: &pb::Comparison) {
    let running = if c.running { "running" } else { "ended" };
    println!(
        "  comparison ({running}) {} (candidate) vs {} (active): {} decisions scored, {} outcomes resolved, {} pending",
        c.candidate_version, c.active_version, c.decisions_scored, c.outcomes_resolved, c.pending
    );
    if let (Some(brier), Some(log_loss)) = (&c.brier, &c.log_loss)
        && c.outcomes_resolved > 0
    {
        println!(
            "    Brier    active {:.5}  candidate {:.5}  difference {:+.5} ± {:.5}",
            brier.active, brier.candidate, brier.difference, brier.standard_error
        );
        println!(
            "    log loss active {:.5}  candidate {:.5}  difference {:+.5} ± {:.5}",
            log_loss.active, log_loss.candidate, log_loss.difference, log_loss.standard_error
        );
    }
    println!(
        "    agreement: mean |Δp| {:.4}, {:.1} % within 0.05",
        c.mean_abs_difference,
        c.agreement * 100.0
    );
    println!("    {}", c.verdict);
}
