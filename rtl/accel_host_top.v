// Simulation top for whole models: accel_top + dram_host (host patches and ranged dumps between programs),
// plus a program loader so the host does not write the instruction memory one word per clock from Python:
// a rising `prog` reads +IMEM_FILE=<file> ($readmemh, one 128-bit word per line) into a staging buffer,
// copies words 0..prog_len-1 into the instruction memory through accel_top's host port (one per cycle),
// then pulses accel_top's start. The host waits for `halted`/`error` without waking every cycle.
// The direct host port (imem_we/imem_waddr/imem_wdata, start) still works when `prog` is idle.
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
    wire                   dram_ren, dram_wen;
    wire [31:0]            dram_raddr, dram_waddr;
    wire [BUS_BYTES*8-1:0] dram_rdata, dram_wdata;
    wire [BUS_BYTES-1:0]   dram_wstrb;

    // ---- program loader ------------------------------------------------------------------------------
    localparam IM_AW = (IMEM_DEPTH > 1) ? $clog2(IMEM_DEPTH) : 1;
    reg [127:0] pmem [0:IMEM_DEPTH-1];
    reg [8*512-1:0] pname;
    reg         prog_q, ld_active, ld_we, ld_start;
    reg [15:0]  ld_cnt, ld_addr;
    reg [127:0] ld_data;
    initial begin
        prog_q = 1'b0; ld_active = 1'b0; ld_we = 1'b0; ld_start = 1'b0;
        ld_cnt = 16'd0; ld_addr = 16'd0; ld_data = 128'd0;
    end
    always @(posedge clk) begin
        prog_q <= prog;
        ld_we <= 1'b0;
        ld_start <= 1'b0;
        if (prog && !prog_q) begin
            if (prog_len != 16'd0 && $value$plusargs("IMEM_FILE=%s", pname))
                $readmemh(pname, pmem, 0, prog_len - 16'd1);
            ld_cnt <= 16'd0;
            ld_active <= (prog_len != 16'd0);
        end else if (ld_active) begin
            ld_we <= 1'b1;
            ld_addr <= ld_cnt;
            ld_data <= pmem[ld_cnt[IM_AW-1:0]];
            ld_cnt <= ld_cnt + 16'd1;
            if (ld_cnt == prog_len - 16'd1) begin
                ld_active <= 1'b0;
                ld_start <= 1'b1;     // lands together with the last word; the fetch of word 0 comes later
            end
        end
    end

    accel_top #(
        .ROWS(ROWS), .COLS(COLS), .DATAFLOW(DATAFLOW), .IN_DEPTH(IN_DEPTH), .W_DEPTH(W_DEPTH),
        .ACC_DEPTH(ACC_DEPTH), .VEC_DEPTH(VEC_DEPTH), .BUS_BYTES(BUS_BYTES), .VEC_LANES(VEC_LANES),
        .IMEM_DEPTH(IMEM_DEPTH)
    ) u_accel (
        .clk(clk), .rst(rst), .imem_we(imem_we | ld_we), .imem_waddr(ld_we ? ld_addr : imem_waddr),
        .imem_wdata(ld_we ? ld_data : imem_wdata), .start(start | ld_start), .busy(busy), .halted(halted), .error(error), .pc(pc), .retired(retired),
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
