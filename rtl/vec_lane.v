// One lane of the vector unit: y = op(a, b) on int8 operands, saturating to int8.
// Adding an element-wise op is local to this file: give it a code in VEC_* below (and in
// backends/rtl/isa.py::VecOp and backends/rtl/vector_ops.py), and a case in the `always` block.
// Codes 16..31 are reserved for the I-BERT integer kernels (i-exp for softmax, i-GELU polynomial,
// i-sqrt for layernorm) once hwcomp/ops defines them; their row reductions (max, sum) will use a
// reduction tree beside the lanes. An unsupported code sets `ok` low and the controller halts with error.
`default_nettype none
module vec_lane (
    input  wire [7:0]        funct,
    input  wire signed [7:0] a,
    input  wire signed [7:0] b,
    output reg  signed [7:0] y,
    output reg               ok
);
    localparam [7:0] VEC_COPY = 8'd0;  // y = a
    localparam [7:0] VEC_ADD  = 8'd1;  // y = sat8(a + b)
    localparam [7:0] VEC_SUB  = 8'd2;  // y = sat8(a - b)
    localparam [7:0] VEC_MAX  = 8'd3;  // y = max(a, b)
    localparam [7:0] VEC_MIN  = 8'd4;  // y = min(a, b)
    localparam [7:0] VEC_RELU = 8'd5;  // y = max(a, 0)
    localparam [7:0] VEC_MUL  = 8'd6;  // y = sat8(a * b)
    // 16..31: I-BERT kernels. The table lookup itself lives in vector_unit (one table shared by the lanes).
    localparam [7:0] VEC_LUTW = 8'd16; // y = a; vector_unit also writes a into its 256-entry table
    localparam [7:0] VEC_LUT  = 8'd17; // y = table[a] (vector_unit substitutes the table's output)

    wire signed [8:0]  a9 = {a[7], a};
    wire signed [8:0]  b9 = {b[7], b};
    wire signed [8:0]  sum = a9 + b9;
    wire signed [8:0]  dif = a9 - b9;
    wire signed [15:0] prod = a * b;

    // (old-style function ports: pyverilog does not parse ANSI function headers)
    function [7:0] sat9;
        input [8:0] v;
        sat9 = ($signed(v) > 9'sd127) ? 8'h7f : (($signed(v) < -9'sd128) ? 8'h80 : v[7:0]);
    endfunction
    function [7:0] sat16;
        input [15:0] v;
        sat16 = ($signed(v) > 16'sd127) ? 8'h7f : (($signed(v) < -16'sd128) ? 8'h80 : v[7:0]);
    endfunction

    always @(*) begin
        ok = 1'b1;
        case (funct)
            VEC_COPY: y = a;
            VEC_ADD:  y = sat9(sum);
            VEC_SUB:  y = sat9(dif);
            VEC_MAX:  y = (a > b) ? a : b;
            VEC_MIN:  y = (a < b) ? a : b;
            VEC_RELU: y = (a > 8'sd0) ? a : 8'sd0;
            VEC_MUL:  y = sat16(prod);
            VEC_LUTW, VEC_LUT: y = a;
            default: begin
                y = 8'sd0;
                ok = 1'b0;
            end
        endcase
    end
endmodule
`default_nettype wire
