//! `tasksentry secrets --root DIR` on a container root with 10 planted credentials and 10
//! look-alikes (documentation examples, placeholders, hashes, random base64, a certificate):
//! it finds exactly the 10, and no output line holds any 8 consecutive bytes of a planted value.

use std::fs;
use std::path::Path;
use std::process::Command;

fn write(root: &Path, path: &str, content: impl AsRef<[u8]>) {
    let path = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

/// Deterministic random text over `alphabet` (the values must look generated, as real ones do).
struct Random(u64);

impl Random {
    fn text(&mut self, alphabet: &str, len: usize) -> String {
        let alphabet = alphabet.as_bytes();
        (0..len)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                alphabet[((self.0 >> 33) % alphabet.len() as u64) as usize] as char
            })
            .collect()
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let table = BASE64.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn key_block(label: &str, body: &str) -> String {
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Builds the root; returns the planted values (the secret material of each) and the
/// expected (path, kind) of each finding.
fn fixture(root: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let mut random = Random(0x5eed);
    let mut planted = Vec::new();
    let mut expected = Vec::new();
    let mut plant = |value: String, path: &str, kind: &str| {
        planted.push(value);
        expected.push((path.to_owned(), kind.to_owned()));
    };

    // 1. An AWS key pair in the CLI's credentials file.
    let key_id = format!(
        "AKIA{}",
        random.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    );
    let secret = random.text(BASE64, 40);
    write(
        root,
        "/root/.aws/credentials",
        format!(
            "[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\nregion = eu-west-1\n"
        ),
    );
    plant(secret, "/root/.aws/credentials", "aws_credentials");
    // 2. An OpenSSH private key.
    let body = random.text(BASE64, 400);
    write(
        root,
        "/home/app/.ssh/id_ed25519",
        key_block("OPENSSH PRIVATE KEY", &body),
    );
    plant(body, "/home/app/.ssh/id_ed25519", "private_key");
    // 3. A PEM RSA key next to the app.
    let body = random.text(BASE64, 1200);
    write(
        root,
        "/app/certs/server.key",
        key_block("RSA PRIVATE KEY", &body),
    );
    plant(body, "/app/certs/server.key", "private_key");
    // 4. An npm token in .npmrc.
    let token = format!("npm_{}", random.text(ALNUM, 36));
    write(
        root,
        "/home/app/.npmrc",
        format!("registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={token}\n"),
    );
    plant(token, "/home/app/.npmrc", "npm_token");
    // 5. A PyPI token in .pypirc.
    let token = format!("pypi-AgEIcHlwaS5vcmc{}", random.text(ALNUM, 120));
    write(
        root,
        "/home/app/.pypirc",
        format!(
            "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {token}\n"
        ),
    );
    plant(token, "/home/app/.pypirc", "pypi_token");
    // 6. A .netrc password.
    let password = random.text(ALNUM, 20);
    write(
        root,
        "/root/.netrc",
        format!("machine artifacts.internal.corp\nlogin deploy\npassword {password}\n"),
    );
    plant(password, "/root/.netrc", "netrc_password");
    // 7. A GitHub token in .git-credentials.
    let token = format!("ghp_{}", random.text(ALNUM, 36));
    write(
        root,
        "/root/.git-credentials",
        format!("https://deploy:{token}@github.com\n"),
    );
    plant(token, "/root/.git-credentials", "github_token");
    // 8. A registry login in .docker/config.json.
    let password = random.text(ALNUM, 32);
    let auth = base64(format!("AWS:{password}").as_bytes());
    write(
        root,
        "/root/.docker/config.json",
        format!(
            "{{\"auths\":{{\"123456789012.dkr.ecr.eu-west-1.amazonaws.com\":{{\"auth\":\"{auth}\"}}}}}}\n"
        ),
    );
    plant(auth, "/root/.docker/config.json", "docker_auth");
    // 9. A database password in .env (next to a placeholder, look-alike 7).
    let password = random.text(ALNUM, 24);
    write(
        root,
        "/app/.env",
        format!("NODE_ENV=production\nDATABASE_PASSWORD={password}\nSECRET_KEY=${{SECRET_KEY}}\n"),
    );
    plant(password, "/app/.env", "env_file_secret");
    // 10. A Slack bot token in source.
    let token = format!(
        "xoxb-{}-{}-{}",
        random.text("0123456789", 12),
        random.text("0123456789", 13),
        random.text(ALNUM, 24)
    );
    write(
        root,
        "/app/config/settings.py",
        format!("DEBUG = False\nSLACK_BOT = \"{token}\"\n"),
    );
    plant(token, "/app/config/settings.py", "slack_token");

    // Look-alikes.
    // 1. AWS's documentation key pair.
    write(
        root,
        "/usr/share/doc/awscli/README",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    );
    // 2. A template .env.
    write(
        root,
        "/app/.env.example",
        "API_KEY=your_api_key_here\nDB_PASSWORD=changeme\n",
    );
    // 3. Hashes.
    write(
        root,
        "/app/SHA256SUMS",
        format!(
            "{}  app.tar.gz\n{}  app.zip\n",
            random.text("0123456789abcdef", 64),
            random.text("0123456789abcdef", 64)
        ),
    );
    // 4. Random base64 without any credential context.
    write(root, "/app/data/blob.b64", random.text(BASE64, 4000));
    // 5. A certificate (public).
    write(
        root,
        "/app/certs/server.crt",
        key_block("CERTIFICATE", &random.text(BASE64, 1200)),
    );
    // 6. A private key placeholder in documentation.
    write(
        root,
        "/app/README.md",
        "Put your key in certs/server.key:\n\n-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----\n",
    );
    // 8. A placeholder GitHub token in docs.
    write(
        root,
        "/app/docs/ci.md",
        "export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    );
    // 9. A URL with a variable as password.
    write(
        root,
        "/app/config/db.yml",
        "url: postgres://app:${DB_PASS}@db:5432/app\n",
    );
    // 10. A lock file: integrity hashes and commit ids.
    write(
        root,
        "/app/package-lock.json",
        format!(
            "{{\"packages\":{{\"node_modules/x\":{{\"resolved\":\"git+https://github.com/x/x.git#{}\",\"integrity\":\"sha512-{}\"}}}}}}\n",
            random.text("0123456789abcdef", 40),
            random.text(BASE64, 86)
        ),
    );
    // 11. An access key id alone (in a log): half a credential.
    write(
        root,
        "/var/log/app.log",
        format!(
            "assumed role with key AKIA{}\n",
            random.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        ),
    );
    // A binary file holding a token is skipped (binary files are not scanned).
    let mut binary = vec![0u8; 64];
    binary.extend(format!("ghp_{}", random.text(ALNUM, 36)).as_bytes());
    write(root, "/usr/bin/tool", binary);
    // And /proc is never walked.
    write(
        root,
        "/proc/1/environ",
        format!("GITHUB_TOKEN=ghp_{}", random.text(ALNUM, 36)),
    );

    expected.sort();
    (planted, expected)
}

#[test]
fn planted_credentials_are_found_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (planted, expected) = fixture(dir.path());
    assert_eq!(planted.len(), 10);
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["secrets", "--root"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1), "findings exit 1: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut found: Vec<(String, String)> = stdout
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert!(
                json["fingerprint"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("sha256:"))
            );
            assert!(json["line"].as_u64().is_some_and(|l| l >= 1));
            (
                json["path"].as_str().expect("path").to_owned(),
                json["kind"].as_str().expect("kind").to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, expected);

    // No 8 consecutive bytes of any planted value reach any output.
    let output = format!("{stdout}{stderr}");
    for value in &planted {
        for window in value.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).expect("ascii");
            assert!(
                !output.contains(window),
                "output holds {window:?} of a secret"
            );
        }
    }

    // The fingerprint is the value's SHA-256: the same secret elsewhere is recognisable.
    use sha2::Digest;
    let env_line = stdout
        .lines()
        .find(|l| l.contains("/app/.env"))
        .expect(".env finding");
    let digest = sha2::Sha256::digest(planted[8].as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    assert!(
        env_line.contains(&format!("\"sha256:{hex}\"")),
        "{env_line}"
    );
    assert!(env_line.contains("\"line\":2"), "{env_line}");
}

#[test]
fn a_clean_root_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "/app/main.py", "print('hello')\n");
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["secrets", "--root"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
}

/// `--pid`: a process whose environment holds three credentials (a task definition's plain
/// `environment` where `secrets` belonged) and ordinary variables, some with secret-sounding
/// names and harmless values: exactly the three are reported, by variable name, and no 8
/// consecutive bytes of their values are printed.
#[test]
fn credentials_in_a_process_environment_are_found_by_name_never_value() {
    let mut random = Random(0xe7);
    let github = format!("ghp_{}", random.text(ALNUM, 36));
    let db_password = random.text(ALNUM, 24);
    let stripe = format!("sk_live_{}", random.text(ALNUM, 32));
    let mut child = Command::new("sleep")
        .arg("30")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/home/app")
        .env("NODE_ENV", "production")
        .env("LOG_LEVEL", "debug")
        .env("SECRET_NAME", "prod/db")
        .env("TOKEN_TTL", "3600")
        .env("GITHUB_TOKEN", &github)
        .env(
            "DATABASE_URL",
            format!("postgres://app:{db_password}@db:5432/app"),
        )
        .env("STRIPE_API_KEY", &stripe)
        .spawn()
        .expect("sleep");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "/app/main.py", "print('hello')\n");
    let output = Command::new(env!("CARGO_BIN_EXE_tasksentry"))
        .args(["secrets", "--root"])
        .arg(dir.path())
        .args(["--pid", &child.id().to_string()])
        .output()
        .expect("runs");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut variables: Vec<String> = stdout
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert!(json["kind"].as_str().is_some_and(|k| !k.is_empty()));
            assert!(
                json["fingerprint"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("sha256:"))
            );
            json["variable"].as_str().expect("variable").to_owned()
        })
        .collect();
    variables.sort();
    assert_eq!(
        variables,
        ["DATABASE_URL", "GITHUB_TOKEN", "STRIPE_API_KEY"]
    );
    let printed = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    for value in [&github, &db_password, &stripe] {
        for window in value.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).expect("ascii");
            assert!(
                !printed.contains(window),
                "output holds {window:?} of a secret"
            );
        }
    }
}
