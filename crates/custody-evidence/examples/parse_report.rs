//! Parses one report and prints its summary as JSON: `parse_report FORMAT FILE`.
//! `bench/sbom-vs-python.sh` times it against Python's `json.load` on the same file.

#![allow(
    clippy::print_stdout,
    reason = "a command-line example prints its result"
)]

use custody_evidence::{Format, Summary, parse_reader};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [format, path] = args.as_slice() else {
        eprintln!("usage: parse_report FORMAT FILE");
        return ExitCode::from(2);
    };
    let result = format
        .parse::<Format>()
        .map_err(|e| e.to_string())
        .and_then(|f| {
            std::fs::File::open(path)
                .map(|file| (f, file))
                .map_err(|e| format!("{path}: {e}"))
        })
        .and_then(|(f, file)| {
            parse_reader(f, std::io::BufReader::new(file)).map_err(|e| e.to_string())
        });
    match result {
        Ok(evidence) => match serde_json::to_string(&Summary::of([&evidence])) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
