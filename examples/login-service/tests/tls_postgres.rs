//! PostgreSQL over TLS: the test starts a PostgreSQL of its own that
//! accepts TLS only (`hostssl` lines alone in `pg_hba.conf`), with a CA and
//! server certificate made at test time, and runs the service against it.
//!
//! Ignored by default: it needs the PostgreSQL server binaries (found with
//! `pg_config --bindir` or in `/usr/lib/postgresql/*/bin`). As root (CI) the
//! server runs as the `postgres` OS user, since PostgreSQL refuses root.

mod common;

use common::PASSWORD;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use login_service::kek::Kek;
use login_service::{App, Config};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `localhost` and `127.0.0.1`: (cert PEM, key PEM).
fn server_certificate(ca: &Ca) -> (String, String) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn postgres_bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_server(d)) {
        return Some(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has_server(d))
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop()
}

fn id(args: &[&str]) -> u32 {
    let output = Command::new("id").args(args).output().expect("run id");
    assert!(output.status.success(), "id {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// A running TLS-only PostgreSQL in a temporary folder; stopped and removed
/// on drop, panics included.
struct TlsPostgres {
    dir: PathBuf,
    bindir: PathBuf,
    /// Run server commands through `runuser -u postgres` (we are root).
    as_postgres: bool,
    port: u16,
    ca_file: PathBuf,
}

impl TlsPostgres {
    fn start(bindir: PathBuf, ca: &Ca) -> Self {
        let as_postgres = id(&["-u"]) == 0;
        let dir = std::env::temp_dir().join(format!(
            "login_service_tls_pg_{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).unwrap();
        // From here on, Drop cleans up.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            ca_file: dir.join("ca.pem"),
            dir,
            bindir,
            as_postgres,
            port,
        };
        let owner = as_postgres.then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])));
        let give = |path: &Path| {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        };
        give(&server.dir);
        server.write_certificates(ca, give);
        server.init_cluster();
        server.launch();
        server
    }

    /// The CA for clients; the server's certificate and key (0600), owned
    /// by the server's user.
    fn write_certificates(&self, ca: &Ca, give: impl Fn(&Path)) {
        std::fs::write(&self.ca_file, &ca.pem).unwrap();
        let (cert, key) = server_certificate(ca);
        std::fs::write(self.dir.join("server.crt"), cert).unwrap();
        give(&self.dir.join("server.crt"));
        let key_file = self.dir.join("server.key");
        login_service::kek::create_private(&key_file)
            .unwrap()
            .write_all(key.as_bytes())
            .unwrap();
        give(&key_file);
    }

    /// A cluster that listens on `self.port` and accepts TLS only.
    fn init_cluster(&self) {
        let data = self.data();
        self.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let dir = self.dir.display();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        write!(
            conf,
            "\nlisten_addresses = 'localhost'\nport = {port}\n\
             unix_socket_directories = '{dir}'\nfsync = off\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n",
            port = self.port
        )
        .unwrap();
        // TLS only: no `host` or `local` lines, so plaintext is refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();
    }

    fn launch(&self) {
        let data = self.data();
        let log = self.dir.join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bindir.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(&self.dir);
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.command(program, args).output().unwrap();
        let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "{program} {args:?}: {output:?}\nserver log:\n{log}"
        );
        output
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.data();
        if data.join("postmaster.pid").exists() {
            let _ = self
                .command(
                    "pg_ctl",
                    &[
                        "-D",
                        data.to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                )
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the service on `url`, registers and logs in over HTTP.
async fn register_and_log_in(url: &str, kek: &Path, email: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = Config::new(url, base.clone());
    config.max_connections = 2;
    config.key_encryption_key_file = Some(kek.to_owned());
    let app = Arc::new(App::build(config).await.expect("build app over TLS"));
    let serving = app.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
    });
    let client = common::client();
    let body = json!({"email": email, "password": PASSWORD});
    let registered = client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = client
        .post(format!("{base}/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

async fn build_error(url: &str, kek: &Path) -> String {
    let mut config = Config::new(url, "http://127.0.0.1");
    config.key_encryption_key_file = Some(kek.to_owned());
    App::build(config)
        .await
        .expect_err("connection must be refused")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the PostgreSQL server binaries (initdb, pg_ctl); run with --ignored"]
async fn postgres_over_tls_require_and_verify_full_work_and_plaintext_is_refused() {
    let Some(bindir) = postgres_bindir() else {
        eprintln!(
            "skipped: no PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql/*/bin)"
        );
        return;
    };
    let ca = new_ca("login-service test CA");
    let server = TlsPostgres::start(bindir, &ca);
    let kek = server.dir.join("test.kek");
    Kek::generate_file(&kek).unwrap();

    // sslmode=require: encrypted, certificate not checked.
    let require = server.url("127.0.0.1", "sslmode=require");
    register_and_log_in(&require, &kek, "require@example.com").await;

    // sslmode=verify-full: the certificate chains to the CA and names the host.
    let ca_file = server.ca_file.display().to_string();
    let verify_full = server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    register_and_log_in(&verify_full, &kek, "verify@example.com").await;

    // The connection really is TLS (pg_hba.conf allows nothing else anyway).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&verify_full).await.unwrap();
    let ssl: bool = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("ssl");
    assert!(ssl);
    pool.close().await;

    // Plaintext is refused by the server.
    let error = build_error(&server.url("127.0.0.1", "sslmode=disable"), &kek).await;
    assert!(
        error.contains("pg_hba.conf") && error.contains("no encryption"),
        "{error}"
    );

    // verify-full with another CA refuses the server's certificate.
    let other = new_ca("another CA");
    let other_file = server.dir.join("other-ca.pem");
    std::fs::write(&other_file, &other.pem).unwrap();
    let error = build_error(
        &server.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", other_file.display()),
        ),
        &kek,
    )
    .await;
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
}
