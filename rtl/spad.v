// Scratchpad: synchronous single-port-read, single-port-write SRAM model.
// Read data appears the cycle after ren (registered output, like a BRAM / SRAM macro).
// A read and a write of the same address in one cycle return the old data (read-first).
`default_nettype none
module spad #(
    parameter WIDTH = 64,
    parameter DEPTH = 256,
    parameter AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  wire             clk,
    input  wire             ren,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata,
    input  wire             wen,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
        rdata = {WIDTH{1'b0}};
    end
    always @(posedge clk) begin
        if (ren) rdata <= mem[raddr];
        if (wen) mem[waddr] <= wdata;
    end
endmodule
`default_nettype wire
