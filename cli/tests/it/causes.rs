//! The `shippy` binary names each cause of a failure once.

#[test]
fn nats_down_names_the_refusal_once() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shippy"))
        .args(["--nats-url", "nats://127.0.0.1:1", "--timeout-ms", "2000", "list"])
        .output()
        .expect("run shippy");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("shippy: cannot reach NATS at nats://127.0.0.1:1"), "{stderr}");
    assert_eq!(stderr.matches("onnection refused").count(), 1, "each cause once: {stderr}");
}
