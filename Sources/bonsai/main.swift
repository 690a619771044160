import CBonsai; print(String(cString: bonsai_cpu_features()), bonsai_has_openmp(), bonsai_max_threads())
