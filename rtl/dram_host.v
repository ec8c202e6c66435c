// Simulation-only DRAM model with host access between programs (the model-level bench, sim/tb_model.py):
// like dram_model, plus a rising `load` applies the $readmemh patch file +DRAM_PATCH=<file> (`@addr` lines
// then bytes: only the listed bytes change) and a rising `dump` writes bytes dump_lo..dump_hi to
// +DRAM_DUMP=<file>. The initial image comes from +DRAM_INIT_BIN=<file> (raw bytes, $fread) or
// +DRAM_INIT=<file> (hex, $readmemh). Addresses wrap modulo DRAM_BYTES. Not synthesizable as a real memory.
`default_nettype none
module dram_host #(
    parameter BUS_BYTES = 16,
    parameter DRAM_BYTES = 65536
) (
    input  wire                   clk,
    input  wire                   ren,
    /* verilator lint_off UNUSEDSIGNAL */  // addresses wrap modulo DRAM_BYTES
    input  wire [31:0]            raddr,
    output reg  [BUS_BYTES*8-1:0] rdata,
    input  wire                   wen,
    input  wire [31:0]            waddr,
    input  wire [31:0]            dump_lo,
    input  wire [31:0]            dump_hi,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [BUS_BYTES*8-1:0] wdata,
    input  wire [BUS_BYTES-1:0]   wstrb,
    input  wire                   load,
    input  wire                   dump
);
    localparam AW = $clog2(DRAM_BYTES);
    reg [7:0] mem [0:DRAM_BYTES-1];
    reg [8*512-1:0] fname;
    reg dump_q, load_q;
    integer i, fd, nread;
    initial begin
        for (i = 0; i < DRAM_BYTES; i = i + 1) mem[i] = 8'd0;
        rdata = {BUS_BYTES*8{1'b0}};
        dump_q = 1'b0;
        load_q = 1'b0;
        if ($value$plusargs("DRAM_INIT_BIN=%s", fname)) begin   // raw bytes from address 0 (fast for large images)
            fd = $fopen(fname, "rb");
            nread = (fd == 0) ? 0 : $fread(mem, fd);
            if (fd != 0) $fclose(fd);
            if (nread == 0) $display("dram_host: +DRAM_INIT_BIN=%0s: nothing read", fname);
        end else if ($value$plusargs("DRAM_INIT=%s", fname)) $readmemh(fname, mem);
    end
    always @(posedge clk) begin
        if (ren)
            for (i = 0; i < BUS_BYTES; i = i + 1)
                rdata[8*i +: 8] <= mem[raddr[AW-1:0] + i[AW-1:0]];  // AW-bit sum wraps
        if (wen)
            for (i = 0; i < BUS_BYTES; i = i + 1)
                if (wstrb[i]) mem[waddr[AW-1:0] + i[AW-1:0]] <= wdata[8*i +: 8];
        dump_q <= dump;
        load_q <= load;
        if (load && !load_q && $value$plusargs("DRAM_PATCH=%s", fname)) $readmemh(fname, mem);
        if (dump && !dump_q && $value$plusargs("DRAM_DUMP=%s", fname))
            $writememh(fname, mem, dump_lo[AW-1:0], dump_hi[AW-1:0]);
    end
endmodule
`default_nettype wire
