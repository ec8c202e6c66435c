// Processing element: int8 x int8 -> int32 multiply-accumulate.
//
// DATAFLOW = 0 (weight-stationary, double-buffered weights):
//   load : w[lsel] <= b_in                (weights shift down the column; b_out = w[lsel])
//   calc : a_out <= a_in; s_out <= s_in; p_out <= p_in + a_in * w[s_in]
//   The bank select s travels with the activation, so a tile streaming with bank 0 and the next one
//   with bank 1 can follow each other row by row while bank 0 is reloaded behind the wavefront.
// DATAFLOW = 1 (output-stationary):
//   calc : a_out <= a_in; b_out <= b_in; acc <= acc + a_in * b_in
//   shift: acc <= p_in                    (results drain down the column; p_out = acc)
//   clear: acc <= 0
// Sums wrap modulo 2^32 (two's complement), like hwcomp.ops.intmath.wrap_int32.
`default_nettype none
module pe #(
    parameter DATAFLOW = 0
) (
    input  wire               clk,
    input  wire               calc,    // a multiply-accumulate step
    input  wire               load,    // WS: shift a weight into bank `lsel` from the north
    input  wire               lsel,    // WS: the bank `load` writes (and b_out shows)
    input  wire               shift,   // OS: shift accumulators south
    input  wire               clear,   // OS: zero the accumulator
    input  wire               s_in,    // WS: weight bank of the activation a_in
    input  wire signed [7:0]  a_in,
    input  wire signed [7:0]  b_in,
    input  wire signed [31:0] p_in,
    output wire               s_out,
    output wire signed [7:0]  a_out,
    output wire signed [7:0]  b_out,
    output wire signed [31:0] p_out
);
    reg                a_s;
    reg  signed [7:0]  a_q;
    reg  signed [7:0]  b_q;   // OS: operand register; WS: weight bank 0
    reg  signed [7:0]  w1_q;  // WS: weight bank 1
    reg  signed [31:0] p_q;
    wire signed [7:0]  w_op = s_in ? w1_q : b_q;
    wire signed [7:0]  b_op = (DATAFLOW == 0) ? w_op : b_in;
    wire signed [15:0] prod = a_in * b_op;
    wire signed [31:0] prod32 = {{16{prod[15]}}, prod};

    initial begin
        a_s = 1'b0;
        a_q = 8'sd0;
        b_q = 8'sd0;
        w1_q = 8'sd0;
        p_q = 32'sd0;
    end

    always @(posedge clk) begin
        if (calc) a_q <= a_in;
        if (calc) a_s <= s_in;
        if (DATAFLOW == 0) begin
            if (load && !lsel) b_q <= b_in;
            if (load && lsel) w1_q <= b_in;
            if (calc) p_q <= p_in + prod32;
        end else begin
            if (calc) b_q <= b_in;
            if (clear) p_q <= 32'sd0;
            else if (shift) p_q <= p_in;
            else if (calc) p_q <= p_q + prod32;
        end
    end

    assign s_out = a_s;
    assign a_out = a_q;
    assign b_out = (DATAFLOW == 0 && lsel) ? w1_q : b_q;
    assign p_out = p_q;
endmodule
`default_nettype wire
