//! Prints the instruction-set tiers this CPU can run and the one the process would use.
//! With an argument, exits 0 if that tier is available and 1 (with the reason) otherwise:
//! `cargo run -p mobile-cnn-kernels --example isa -- avx512`.

use mobile_cnn_kernels::Isa;

fn main() -> std::process::ExitCode {
    if let Some(name) = std::env::args().nth(1) {
        return match name
            .parse::<Isa>()
            .and_then(|i| i.check("the command line"))
        {
            Ok(isa) => {
                println!("{isa}: available");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let names: Vec<_> = Isa::available().iter().map(|i| i.name()).collect();
    println!("available: {}", names.join(", "));
    match Isa::selected() {
        Ok(isa) => println!("selected: {isa}"),
        Err(e) => println!("selected: error: {e}"),
    }
    std::process::ExitCode::SUCCESS
}
