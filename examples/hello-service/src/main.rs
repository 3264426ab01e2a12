use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;

use hello_service::{Config, healthcheck, parse_port, serve};

const USAGE: &str = "\
usage: hello-service [--healthcheck]

Serves HTTP on 0.0.0.0:$PORT (default 8080):
  GET /         a greeting: $GREETING (default Hello) and $APP_VERSION (default dev)
  GET /healthz  ok

  --healthcheck  exit 0 if the service on 127.0.0.1:$PORT answers /healthz
                 with 200, 1 otherwise (for a container HEALTHCHECK)";

fn main() -> ExitCode {
    let port = match parse_port(std::env::var("PORT").ok().as_deref()) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("hello-service: {e}");
            return ExitCode::from(2);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => run(port),
        ["--healthcheck"] => match healthcheck(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hello-service: unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
        ["-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(port: u16) -> ExitCode {
    exit_on_termination_signals();
    let config = Config::from_env();
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hello-service: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "hello-service {} listening on 0.0.0.0:{port}",
        config.version
    );
    serve(listener, config);
    ExitCode::SUCCESS
}

/// Exits at once on SIGTERM or SIGINT. A process's default action for them
/// would do that, except as PID 1 in a container, where the kernel drops
/// signals the process has no handler for: `docker stop` would then wait its
/// 10 s and SIGKILL, and Ctrl-C on `docker run` would do nothing. Requests are
/// independent and nothing is buffered, so there is nothing to clean up.
fn exit_on_termination_signals() {
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }
    extern "C" fn exit_now(_signum: i32) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { _exit(0) }
    }
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: installs a handler that only calls an async-signal-safe function.
        unsafe { signal(signum, exit_now) };
    }
}
