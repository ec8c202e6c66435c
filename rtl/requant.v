// Requantization of one int32 lane to int8, EXACTLY hwcomp.ops.intmath.requantize:
//   y = clamp(((acc * multiplier + 2^(shift-1)) >>> shift) + zero_point, -128, 127)
// with a 64-bit signed product and an arithmetic (floor) shift, shift in 1..62.
// Two pipeline stages: (1) product, (2) round + shift + zero point + saturate.
`default_nettype none
module requant (
    input  wire               clk,
    input  wire               in_valid,
    input  wire signed [31:0] acc,
    input  wire signed [31:0] multiplier,
    input  wire [5:0]         shift,
    input  wire signed [7:0]  zero_point,
    output reg                out_valid,
    output reg  signed [7:0]  y
);
    reg signed [63:0] prod_q;
    reg [5:0]         shift_q;
    reg signed [7:0]  zp_q;
    reg               v_q;

    // Stage 2 arithmetic (65 bits so that adding the rounding constant cannot overflow).
    wire signed [64:0] prod65  = {prod_q[63], prod_q};
    wire signed [64:0] rnd     = (shift_q == 6'd0) ? 65'sd0 : (65'sd1 <<< (shift_q - 6'd1));
    wire signed [64:0] sum     = prod65 + rnd;
    wire signed [64:0] shifted = sum >>> shift_q;
    wire signed [64:0] withzp  = shifted + {{57{zp_q[7]}}, zp_q};
    wire               too_big = (withzp > 65'sd127);
    wire               too_small = (withzp < -65'sd128);

    initial begin
        prod_q = 64'sd0;
        shift_q = 6'd1;
        zp_q = 8'sd0;
        v_q = 1'b0;
        out_valid = 1'b0;
        y = 8'sd0;
    end

    always @(posedge clk) begin
        prod_q    <= {{32{acc[31]}}, acc} * {{32{multiplier[31]}}, multiplier};
        shift_q   <= shift;
        zp_q      <= zero_point;
        v_q       <= in_valid;
        out_valid <= v_q;
        y <= too_big ? 8'sd127 : (too_small ? -8'sd128 : withzp[7:0]);
    end
endmodule
`default_nettype wire
