// Vector unit: VEC_LANES `vec_lane`s sweep a COLS-wide int8 line in COLS/VEC_LANES beats.
// While `en`, beat `beat` computes elements [beat*VEC_LANES, (beat+1)*VEC_LANES) into y_line.
// A 256-entry int8 table shared by the lanes serves any int8 -> int8 function exactly (e.g. i-GELU with
// its requantization, tabulated by the compiler over every int8 input): LUTW (16) writes a line's bytes to
// table[line*COLS + element], LUT (17) returns table[a] (a read as an unsigned byte).
`default_nettype none
module vector_unit #(
    parameter COLS = 4,
    parameter VEC_LANES = 4
) (
    input  wire               clk,
    input  wire               en,
    input  wire [15:0]        beat,
    /* verilator lint_off UNUSEDSIGNAL */  // the table index uses the low 8 bits
    input  wire [15:0]        line,
    /* verilator lint_on UNUSEDSIGNAL */
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

    localparam [7:0] VEC_LUTW = 8'd16, VEC_LUT = 8'd17;
    localparam integer LANES_I = VEC_LANES;
    localparam integer COLS_I = COLS;
    reg  [7:0] lut [0:255];
    /* verilator lint_off UNUSEDSIGNAL */  // the table has 256 entries: the low 8 bits index it
    wire [15:0] lut_base = line * COLS_I[15:0] + beat * LANES_I[15:0];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [VEC_LANES*8-1:0] lut_y;
    generate
        for (l = 0; l < VEC_LANES; l = l + 1) begin : g_lut
            assign lut_y[8*l +: 8] = lut[a_sl[8*l +: 8]];
        end
    endgenerate
    integer i;
    initial for (i = 0; i < 256; i = i + 1) lut[i] = 8'd0;
    always @(posedge clk) begin
        if (en && funct == VEC_LUTW)
            for (i = 0; i < VEC_LANES; i = i + 1) lut[lut_base[7:0] + i[7:0]] <= a_sl[8*i +: 8];
    end

    initial y_line = {COLS*8{1'b0}};
    always @(posedge clk) begin
        if (en) y_line[beat*VEC_LANES*8 +: VEC_LANES*8] <= (funct == VEC_LUT) ? lut_y : y_sl;
    end
endmodule
`default_nettype wire
