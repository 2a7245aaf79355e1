//! The dashboard as an `axum::Router`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::dashboard::{DashboardConfig, DashboardSettings, api, gate};
use crate::lifecycle::Tracker;

/// What every handler shares.
pub(crate) struct SharedInner<C: DashboardConfig> {
    pub settings: DashboardSettings,
    pub tracker: Tracker<C::Model>,
}

/// A cheap handle on [`SharedInner`].
pub(crate) type Shared<C> = Arc<SharedInner<C>>;

/// Builds the dashboard's router from a `dashboard!` configuration and the
/// tracker of the same entity.
///
/// ```no_run
/// # tasktrail::dashboard! { struct Ops<task_run::Entity> {} }
/// # mod task_run {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, tasktrail::TrackingConfig)]
/// #     #[sea_orm(table_name = "task_runs")]
/// #     pub struct Model {
/// #         #[sea_orm(primary_key)]
/// #         pub id: i64,
/// #         #[sea_orm(unique)]
/// #         pub task_key: String,
/// #         pub status: String,
/// #     }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// # async fn demo(tracker: task_run::Tracker) -> std::io::Result<()> {
/// let app = axum::Router::new().merge(tasktrail::Dashboard::new(Ops::default(), tracker).router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
/// # }
/// ```
pub struct Dashboard<C: DashboardConfig> {
    config: C,
    tracker: Tracker<C::Model>,
    remote_without_auth: bool,
}

impl<C: DashboardConfig> Dashboard<C> {
    /// A dashboard showing `tracker`'s runs with `config`.
    pub fn new(config: C, tracker: Tracker<C::Model>) -> Self {
        Dashboard {
            config,
            tracker,
            remote_without_auth: false,
        }
    }

    /// Serves the dashboard to clients beyond loopback without any
    /// authentication. Only for networks where everyone may see and act on
    /// every run.
    pub fn allow_remote_without_auth(mut self) -> Self {
        self.remote_without_auth = true;
        self
    }

    /// The routes under the configuration's `url_prefix`, to `merge` into
    /// an app.
    pub fn router(self) -> Router {
        let prefix = self.config.settings().url_prefix;
        let routes = self.routes();
        if prefix == "/" {
            routes
        } else {
            Router::new().nest(&prefix, routes)
        }
    }

    /// The routes at the root, to `nest` under a path of the app's choice.
    pub fn routes(self) -> Router {
        let shared: Shared<C> = Arc::new(SharedInner {
            settings: self.config.settings(),
            tracker: self.tracker,
        });
        let router = Router::new()
            .route("/api/runs", get(api::runs::<C>))
            .route("/api/runs/{key}", get(api::run::<C>))
            .route("/api/metrics", get(api::metrics::<C>))
            .with_state(shared);
        if self.remote_without_auth {
            router
        } else {
            router.layer(axum::middleware::from_fn(gate::loopback_only))
        }
    }
}
