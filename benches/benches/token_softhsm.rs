//! Token path overhead on SoftHSM loaded directly: Keyward's layer against bare cryptoki.

fn main() -> anyhow::Result<()> {
    let mut c = keyward_bench::criterion();
    keyward_bench::token_path::run(&mut c, "softhsm", &keyward_bench::softhsm_module())?;
    c.final_summary();
    Ok(())
}
