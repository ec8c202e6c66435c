// Processing element: int8 x int8 -> int32 multiply-accumulate.
//
// DATAFLOW = 0 (weight-stationary):
//   load : w <= b_in                      (weights shift down the column; b_out = w)
//   calc : a_out <= a_in; p_out <= p_in + a_in * w
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
    input  wire               load,    // WS: shift a weight in from the north
    input  wire               shift,   // OS: shift accumulators south
    input  wire               clear,   // OS: zero the accumulator
    input  wire signed [7:0]  a_in,
    input  wire signed [7:0]  b_in,
    input  wire signed [31:0] p_in,
    output wire signed [7:0]  a_out,
    output wire signed [7:0]  b_out,
    output wire signed [31:0] p_out
);
    reg  signed [7:0]  a_q;
    reg  signed [7:0]  b_q;
    reg  signed [31:0] p_q;
    wire signed [7:0]  b_op = (DATAFLOW == 0) ? b_q : b_in;
    wire signed [15:0] prod = a_in * b_op;
    wire signed [31:0] prod32 = {{16{prod[15]}}, prod};

    initial begin
        a_q = 8'sd0;
        b_q = 8'sd0;
        p_q = 32'sd0;
    end

    always @(posedge clk) begin
        if (calc) a_q <= a_in;
        if (DATAFLOW == 0) begin
            if (load) b_q <= b_in;
            if (calc) p_q <= p_in + prod32;
        end else begin
            if (calc) b_q <= b_in;
            if (clear) p_q <= 32'sd0;
            else if (shift) p_q <= p_in;
            else if (calc) p_q <= p_q + prod32;
        end
    end

    assign a_out = a_q;
    assign b_out = b_q;
    assign p_out = p_q;
endmodule
`default_nettype wire
