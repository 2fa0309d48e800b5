use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = snorq_tools::cli::Cli::parse();
    match snorq_tools::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
