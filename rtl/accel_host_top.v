// Simulation top for whole models: accel_top + dram_host (host patches and ranged dumps between programs).
`default_nettype none
module accel_host_top #(
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
    parameter DRAM_BYTES = 65536
) (
    input  wire         clk,
    input  wire         rst,
    input  wire         imem_we,
    input  wire [15:0]  imem_waddr,
    input  wire [127:0] imem_wdata,
    input  wire         start,
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
    wire                   dram_ren, dram_wen;
    wire [31:0]            dram_raddr, dram_waddr;
    wire [BUS_BYTES*8-1:0] dram_rdata, dram_wdata;
    wire [BUS_BYTES-1:0]   dram_wstrb;

    accel_top #(
        .ROWS(ROWS), .COLS(COLS), .DATAFLOW(DATAFLOW), .IN_DEPTH(IN_DEPTH), .W_DEPTH(W_DEPTH),
        .ACC_DEPTH(ACC_DEPTH), .VEC_DEPTH(VEC_DEPTH), .BUS_BYTES(BUS_BYTES), .VEC_LANES(VEC_LANES),
        .IMEM_DEPTH(IMEM_DEPTH)
    ) u_accel (
        .clk(clk), .rst(rst), .imem_we(imem_we), .imem_waddr(imem_waddr), .imem_wdata(imem_wdata),
        .start(start), .busy(busy), .halted(halted), .error(error), .pc(pc), .retired(retired),
        .cycles(cycles),
        .dram_ren(dram_ren), .dram_raddr(dram_raddr), .dram_rdata(dram_rdata),
        .dram_wen(dram_wen), .dram_waddr(dram_waddr), .dram_wdata(dram_wdata), .dram_wstrb(dram_wstrb)
    );
    dram_host #(.BUS_BYTES(BUS_BYTES), .DRAM_BYTES(DRAM_BYTES)) u_dram (
        .clk(clk), .ren(dram_ren), .raddr(dram_raddr), .rdata(dram_rdata), .wen(dram_wen),
        .waddr(dram_waddr), .wdata(dram_wdata), .wstrb(dram_wstrb), .load(load), .dump(dump),
        .dump_lo(dump_lo), .dump_hi(dump_hi));
endmodule
`default_nettype wire
