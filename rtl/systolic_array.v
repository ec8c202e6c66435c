// ROWS x COLS systolic array of `pe`, with input skew and output de-skew registers.
//
// Streaming interface (one "line" per cycle, lane i of a bus is bits [8*i +: 8]):
//   in_valid, in_a[ROWS] : WS: one row of A (A[m, k0..k0+ROWS)); OS: one column of A (A[m0.., k])
//   in_sel               : WS: weight bank the row multiplies with (travels with it through the skew)
//   in_b[COLS]           : WS: weight row while ws_load (pushed bottom row first) into bank ws_lsel;
//                          OS: one row of B
//   out_c[COLS] int32    : WS: one row of C, out_valid marks it (LATENCY cycles after in_valid)
//                          OS: bottom row of accumulators (valid while os_shift drains row ROWS-1-d)
// Lines presented while in_valid=0 are zeros, so gaps and flush cycles add nothing.
// Links between PEs are net arrays indexed [row][col] flattened as r*(COLS+1)+c (Icarus speed).
`default_nettype none
module systolic_array #(
    parameter ROWS = 4,
    parameter COLS = 4,
    parameter DATAFLOW = 0
) (
    input  wire                 clk,
    input  wire                 in_valid,
    input  wire                 in_sel,
    input  wire [ROWS*8-1:0]    in_a,
    input  wire [COLS*8-1:0]    in_b,
    input  wire                 ws_load,
    input  wire                 ws_lsel,
    input  wire                 os_clear,
    input  wire                 os_shift,
    output wire                 out_valid,
    output wire [COLS*32-1:0]   out_c
);
    // WS: a row entering at cycle t leaves the de-skew stage at t + LATENCY.
    localparam LATENCY = ROWS + COLS - 1;

    wire [7:0]  a_link [0:ROWS*(COLS+1)-1];   // a_link[r*(COLS+1)+c] enters PE(r,c) from the west
    wire        s_link [0:ROWS*(COLS+1)-1];   // its weight bank (WS)
    wire [7:0]  b_link [0:(ROWS+1)*COLS-1];   // b_link[r*COLS+c] enters PE(r,c) from the north
    wire [31:0] p_link [0:(ROWS+1)*COLS-1];   // p_link[r*COLS+c] enters PE(r,c) from the north

    genvar r, c;
    // ---- west edge: row r delayed by r cycles --------------------------------------------------
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_west
            wire [7:0] a_src = in_valid ? in_a[8*r +: 8] : 8'd0;
            if (r == 0) begin : g_nodelay
                assign a_link[0] = a_src;
                assign s_link[0] = in_sel;
            end else begin : g_delay
                reg [7:0] sk [0:r-1];
                reg       ss [0:r-1];
                integer i;
                initial for (i = 0; i < r; i = i + 1) begin sk[i] = 8'd0; ss[i] = 1'b0; end
                always @(posedge clk) begin
                    sk[0] <= a_src;
                    ss[0] <= in_sel;
                    for (i = 1; i < r; i = i + 1) begin sk[i] <= sk[i-1]; ss[i] <= ss[i-1]; end
                end
                assign a_link[r*(COLS+1)] = sk[r-1];
                assign s_link[r*(COLS+1)] = ss[r-1];
            end
        end
    endgenerate

    // ---- north edge: OS column c delayed by c cycles; WS loads all columns at once --------------
    generate
        for (c = 0; c < COLS; c = c + 1) begin : g_north
            wire [7:0] b_src = (DATAFLOW == 0) ? in_b[8*c +: 8] : (in_valid ? in_b[8*c +: 8] : 8'd0);
            assign p_link[c] = 32'd0;
            if (c == 0 || DATAFLOW == 0) begin : g_nodelay
                assign b_link[c] = b_src;
            end else begin : g_delay
                reg [7:0] sk [0:c-1];
                integer i;
                initial for (i = 0; i < c; i = i + 1) sk[i] = 8'd0;
                always @(posedge clk) begin
                    sk[0] <= b_src;
                    for (i = 1; i < c; i = i + 1) sk[i] <= sk[i-1];
                end
                assign b_link[c] = sk[c-1];
            end
        end
    endgenerate

    // ---- the PE grid ---------------------------------------------------------------------------
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                pe #(.DATAFLOW(DATAFLOW)) u_pe (
                    .clk(clk),
                    .calc(1'b1),
                    .load(ws_load),
                    .lsel(ws_lsel),
                    .shift(os_shift),
                    .clear(os_clear),
                    .s_in(s_link[r*(COLS+1)+c]),
                    .a_in(a_link[r*(COLS+1)+c]),
                    .b_in(b_link[r*COLS+c]),
                    .p_in(p_link[r*COLS+c]),
                    .s_out(s_link[r*(COLS+1)+c+1]),
                    .a_out(a_link[r*(COLS+1)+c+1]),
                    .b_out(b_link[(r+1)*COLS+c]),
                    .p_out(p_link[(r+1)*COLS+c])
                );
            end
        end
    endgenerate

    // ---- south edge --------------------------------------------------------------------------
    generate
        if (DATAFLOW == 0) begin : g_ws_out
            // Column c leaves the grid c cycles after column 0: delay it by COLS-1-c more.
            for (c = 0; c < COLS; c = c + 1) begin : g_deskew
                if (c == COLS - 1) begin : g_nodelay
                    assign out_c[32*c +: 32] = p_link[ROWS*COLS+c];
                end else begin : g_delay
                    reg [31:0] dk [0:COLS-2-c];
                    integer i;
                    initial for (i = 0; i <= COLS-2-c; i = i + 1) dk[i] = 32'd0;
                    always @(posedge clk) begin
                        dk[0] <= p_link[ROWS*COLS+c];
                        for (i = 1; i <= COLS-2-c; i = i + 1) dk[i] <= dk[i-1];
                    end
                    assign out_c[32*c +: 32] = dk[COLS-2-c];
                end
            end
            reg vq [0:LATENCY-1];
            integer j;
            initial for (j = 0; j < LATENCY; j = j + 1) vq[j] = 1'b0;
            always @(posedge clk) begin
                vq[0] <= in_valid;
                for (j = 1; j < LATENCY; j = j + 1) vq[j] <= vq[j-1];
            end
            assign out_valid = vq[LATENCY-1];
        end else begin : g_os_out
            for (c = 0; c < COLS; c = c + 1) begin : g_out
                assign out_c[32*c +: 32] = p_link[ROWS*COLS+c];
            end
            assign out_valid = os_shift;
        end
    endgenerate

    // Unused links: the east edge of `a`, and in OS the south edge of `b` (WS: the weight chain end).
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_unused
            // verilator lint_off UNUSEDSIGNAL
            wire [7:0] a_east = a_link[r*(COLS+1)+COLS];
            wire       s_east = s_link[r*(COLS+1)+COLS];
            // verilator lint_on UNUSEDSIGNAL
        end
        for (c = 0; c < COLS; c = c + 1) begin : g_unused_b
            // verilator lint_off UNUSEDSIGNAL
            wire [7:0] b_south = b_link[ROWS*COLS+c];
            // verilator lint_on UNUSEDSIGNAL
        end
    endgenerate
endmodule
`default_nettype wire
