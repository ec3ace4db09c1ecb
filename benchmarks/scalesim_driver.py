"""Run SCALE-Sim (scalesim 3.0.0) on single conv layers; called by validate_systolic.py.

Runs under SCALE-Sim's own Python (its virtual environment), not hwprune's: reads one
JSON object per line on stdin::

    {"name": "conv1", "h": 227, "w": 227, "r": 11, "s": 11, "c": 3, "m": 96,
     "stride": 4, "dataflow": "ws", "rows": 32, "cols": 32, "full": false}

and writes one JSON object per line on stdout: ``cycles``, ``stall_cycles``,
``ifmap_reads``, ``filter_reads``, ``ofmap_writes`` (SRAM element counts), ``folds``,
``mode``.

The configuration is SCALE-Sim's default (scale-sim-v3 configs/scale.cfg): 64 KB
ifmap, filter and ofmap SRAMs, ``InterfaceBandwidth: CALC``, only the array size and
dataflow set per query.

* ``"full": true``: SCALE-Sim's whole single-layer simulation
  (``single_layer_sim.run()``: operand matrices, prefetch and demand matrices, then the
  double-buffered scratchpad memory system serving every demand line); ``cycles`` is
  its ``total_cycles`` (compute report) and the SRAM counts its detailed access
  report's. Slow: about 4 000 demand lines a second.
* ``"full": false``: SCALE-Sim's compute system only (operand and demand matrices,
  the same SRAM counters the report reads); ``cycles`` is the number of demand lines
  minus one, which is what the memory system returns when nothing stalls (the case in
  CALC mode, where the interface bandwidth is sized to the demand; a full run reports
  ``stall_cycles = 0``).
"""

import json
import os
import sys
import tempfile

from scalesim.layout_utils import layouts
from scalesim.scale_config import scale_config
from scalesim.single_layer_sim import single_layer_sim
from scalesim.topology_utils import topologies

CONFIG = """[general]
run_name = hwprune_peer

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

TOPOLOGY = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
            "Num Filter, Strides,\n{name}, {h}, {w}, {r}, {s}, {c}, {m}, {stride},\n")


def simulate(q):
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = os.path.join(tmp, "scale.cfg")
        topo_file = os.path.join(tmp, "layer.csv")
        with open(cfg_file, "w") as f:
            f.write(CONFIG.format(**q))
        with open(topo_file, "w") as f:
            f.write(TOPOLOGY.format(**q))
        cfg = scale_config()
        cfg.read_conf_file(cfg_file)
        topo = topologies()
        topo.load_arrays(topofile=topo_file)
    sim = single_layer_sim()
    sim.set_params(layer_id=0, config_obj=cfg, topology_obj=topo, layout_obj=layouts(),
                   verbose=False)
    cs = sim.compute_system
    if q.get("full"):
        sim.run()
        sim.calc_report_data()
        cycles, stalls = int(sim.total_cycles), int(sim.stall_cycles)
        reads = (sim.ifmap_sram_reads, sim.filter_sram_reads, sim.ofmap_sram_writes)
    else:
        _, ifmap = sim.op_mat_obj.get_ifmap_matrix()
        _, filt = sim.op_mat_obj.get_filter_matrix()
        _, ofmap = sim.op_mat_obj.get_ofmap_matrix()
        cs.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap)
        _, _, ofmap_demand = cs.get_demand_matrices()
        cycles, stalls = int(ofmap_demand.shape[0]) - 1, None
        reads = (cs.get_ifmap_requests(), cs.get_filter_requests(), cs.get_ofmap_requests())
    return {"cycles": cycles, "stall_cycles": stalls, "ifmap_reads": int(reads[0]),
            "filter_reads": int(reads[1]), "ofmap_writes": int(reads[2]),
            "folds": len(cs.mapping_efficiency_per_fold) or None,
            "mode": "full" if q.get("full") else "demand"}


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(simulate(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
