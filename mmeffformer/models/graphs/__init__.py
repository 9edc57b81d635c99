"""Models rewritten as single traceable graphs with dynamic sizes: an mmdet detector's whole
inference (:mod:`.detector_graph`), with NMS and RoIAlign as ops that export to ONNX
(:mod:`.onnx_ops`). ONNX export traces them whole; the ExecuTorch runtime runs their
post-processing around a program's methods."""
