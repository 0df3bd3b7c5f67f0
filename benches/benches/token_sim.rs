//! Token path overhead through keyward-sim (SoftHSM behind the simulated USB key): Keyward's
//! layer against bare cryptoki on the same module.

fn main() -> anyhow::Result<()> {
    let mut c = keyward_bench::criterion();
    keyward_bench::token_path::run(&mut c, "sim", &keyward_bench::sim_module()?)?;
    c.final_summary();
    Ok(())
}
