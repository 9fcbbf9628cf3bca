//! The admin port's runtime controls, driven on the real binary: a config written to a
//! file with chosen ports (the binary cannot report the ports it picked), a token file, and
//! requests with or without the bearer token.

use super::*;
use std::path::PathBuf;

/// The real binary running a config file, with its listener and admin addresses.
pub struct Running {
    pub process: Process,
    /// Where live traffic goes (`127.0.0.1:PORT`).
    pub listen: SocketAddr,
    /// Where to reach the admin port (`127.0.0.1:PORT`, even when it binds a wildcard).
    pub admin: SocketAddr,
    /// The directory holding the config and the token file.
    pub dir: tempfile::TempDir,
}

/// Writes `text` (listener and admin on `127.0.0.1:0`, as [`listener_and_admin`] writes
/// them) with free ports instead, the admin bound on `admin_ip`, plus `admin_extra` lines
/// in `[admin]` (`TOKEN_FILE` stands for the token file's path, holding `token`).
pub fn write_config(
    text: &str,
    admin_ip: &str,
    admin_extra: &str,
    token: &str,
) -> (PathBuf, SocketAddr, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write the token file");
    let listen: SocketAddr = free_port();
    let admin: SocketAddr = free_port();
    let text = text
        .replacen(
            "address = \"127.0.0.1:0\"",
            &format!("address = \"{listen}\""),
            1,
        )
        .replacen(
            "[admin]\naddress = \"127.0.0.1:0\"\n",
            &format!(
                "[admin]\naddress = \"{admin_ip}:{}\"\n{}\n",
                admin.port(),
                admin_extra.replace("TOKEN_FILE", token_file.to_str().expect("utf-8 path"))
            ),
            1,
        );
    let path = dir.path().join("shadowtap.toml");
    std::fs::write(&path, text).expect("write the config");
    (path, listen, admin, dir)
}

/// A port nothing listens on (bound once to learn it, then released).
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    probe.local_addr().expect("probe address")
}

impl Running {
    /// Starts the binary on `text` (see [`write_config`]) and waits until it is ready.
    pub async fn start(text: &str, admin_ip: &str, admin_extra: &str, token: &str) -> Running {
        let (path, listen, admin, dir) = write_config(text, admin_ip, admin_extra, token);
        let mut process = Process::start(
            &["run", "--config", path.to_str().expect("utf-8 path")],
            &[("RUST_LOG", "info")],
        );
        process.ready(&admin.to_string()).await;
        Running {
            process,
            listen,
            admin,
            dir,
        }
    }

    /// The token file's path.
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("admin-token")
    }

    /// `method path` on the admin port with a JSON body, and the bearer token when given.
    pub async fn admin(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(full(body.unwrap_or("").to_string()))
            .expect("valid request");
        send(&http1_client(), request).await.expect("admin answers")
    }

    /// `GET path` on the live listener; panics unless it answers 200.
    pub async fn get_live(&self, path: &str) {
        let reply = get(&format!("http://{}{path}", self.listen)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }

    /// The admin `/metrics` text, with the token when given.
    pub async fn metrics(&self, token: Option<&str>) -> String {
        let reply = self.admin(http::Method::GET, "/metrics", None, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.text()
    }
}

/// The parsed JSON body of a reply.
pub fn json_body(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", reply.text()))
}
