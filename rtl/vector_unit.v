// Vector unit: VEC_LANES `vec_lane`s sweep a COLS-wide int8 line in COLS/VEC_LANES beats.
// While `en`, beat `beat` computes elements [beat*VEC_LANES, (beat+1)*VEC_LANES) into y_line.
`default_nettype none
module vector_unit #(
    parameter COLS = 4,
    parameter VEC_LANES = 4
) (
    input  wire               clk,
    input  wire               en,
    input  wire [15:0]        beat,
    input  wire [7:0]         funct,
    input  wire [COLS*8-1:0]  a_line,
    input  wire [COLS*8-1:0]  b_line,
    output reg  [COLS*8-1:0]  y_line,
    output wire               ok
);
    wire [VEC_LANES*8-1:0] a_sl = a_line[beat*VEC_LANES*8 +: VEC_LANES*8];
    wire [VEC_LANES*8-1:0] b_sl = b_line[beat*VEC_LANES*8 +: VEC_LANES*8];
    wire [VEC_LANES*8-1:0] y_sl;
    /* verilator lint_off UNUSEDSIGNAL */  // every lane decodes the same funct; lane 0 reports
    wire [VEC_LANES-1:0]   lane_ok;
    /* verilator lint_on UNUSEDSIGNAL */
    genvar l;
    generate
        for (l = 0; l < VEC_LANES; l = l + 1) begin : g_lane
            vec_lane u_lane (
                .funct(funct),
                .a(a_sl[8*l +: 8]),
                .b(b_sl[8*l +: 8]),
                .y(y_sl[8*l +: 8]),
                .ok(lane_ok[l])
            );
        end
    endgenerate
    assign ok = lane_ok[0];

    initial y_line = {COLS*8{1'b0}};
    always @(posedge clk) begin
        if (en) y_line[beat*VEC_LANES*8 +: VEC_LANES*8] <= y_sl;
    end
endmodule
`default_nettype wire
