// Same build information as the pushgateway binary (git revision, branch, build date, rustc).
include!("../pushgateway/build.rs");
