// Simulation top with a free-running clock: accel_host_top driven by a clock the simulator generates itself
// (`always #HALF`), so no host call is needed per clock edge (cocotb's clock costs two VPI callbacks, two
// value puts and their evaluations per cycle). Same host ports as accel_host_top; `clk` is an output.
`default_nettype none
module accel_host_sim #(
    parameter ROWS = 4,
    parameter COLS = 4,
    parameter DATAFLOW = 0,
    parameter IN_DEPTH = 256,
    parameter W_DEPTH = 256,
    parameter ACC_DEPTH = 256,
    parameter VEC_DEPTH = 256,
    parameter BUS_BYTES = 16,
    parameter VEC_LANES = 4,
    parameter IMEM_DEPTH = 256,
    parameter DRAM_BYTES = 65536,
    parameter HALF_PERIOD = 5       // time units (the benches use 1 ns): a 10 ns clock
) (
    output reg          clk,
    input  wire         rst,
    input  wire         imem_we,
    input  wire [15:0]  imem_waddr,
    input  wire [127:0] imem_wdata,
    input  wire         start,
    input  wire         prog,
    input  wire [15:0]  prog_len,
    input  wire         dump,
    input  wire         load,
    input  wire [31:0]  dump_lo,
    input  wire [31:0]  dump_hi,
    output wire         busy,
    output wire         halted,
    output wire         error,
    output wire [15:0]  pc,
    output wire [31:0]  retired,
    output wire [31:0]  cycles
);
    initial clk = 1'b0;
    always #(HALF_PERIOD) clk = ~clk;

    accel_host_top #(
        .ROWS(ROWS), .COLS(COLS), .DATAFLOW(DATAFLOW), .IN_DEPTH(IN_DEPTH), .W_DEPTH(W_DEPTH),
        .ACC_DEPTH(ACC_DEPTH), .VEC_DEPTH(VEC_DEPTH), .BUS_BYTES(BUS_BYTES), .VEC_LANES(VEC_LANES),
        .IMEM_DEPTH(IMEM_DEPTH), .DRAM_BYTES(DRAM_BYTES)
    ) u_top (
        .clk(clk), .rst(rst), .imem_we(imem_we), .imem_waddr(imem_waddr), .imem_wdata(imem_wdata),
        .start(start), .prog(prog), .prog_len(prog_len), .dump(dump), .load(load), .dump_lo(dump_lo),
        .dump_hi(dump_hi), .busy(busy), .halted(halted), .error(error), .pc(pc), .retired(retired),
        .cycles(cycles));
endmodule
`default_nettype wire
