// accel_top: int8 systolic-array accelerator executing a 128-bit instruction stream.
//
// Instruction word (see backends/rtl/isa.py, the single definition of the encoding):
//   [3:0] op  [11:4] func  [27:12] x  [43:28] y  [59:44] z  [75:60] n  [107:76] dram  [127:108] stride
//   LOAD    func=buffer x=sp line  n=lines  dram=byte addr  stride=bytes between lines
//           (pipelined: the beats of line i+1 issue while line i lands; lines*beats + 3 cycles)
//   STORE   func=buffer x=sp line  n=lines  dram, stride        (buffer VEC int8 or ACC int32)
//   MATMUL  func={load_w, accumulate} x=input line y=weight line z=acc line n=WS: rows of A / OS: K
//   REQUANT x=acc line z=vec line n=lines                       (per-column params from PARAM)
//   VECTOR  func=vec op x=vec src1 y=vec src2 z=vec dst n=lines
//   SYNC    barrier (instructions already retire in order; kept for decoupled queues later)
//   HALT    stop; `halted` rises and `cycles` freezes
// Instructions execute one at a time, so the cycle count is a sum of per-instruction terms that
// backends/rtl/isa_model.py reproduces.
`default_nettype none
module accel_top #(
    parameter ROWS = 4,
    parameter COLS = 4,
    parameter DATAFLOW = 0,      // 0: weight-stationary, 1: output-stationary
    parameter IN_DEPTH = 256,    // input scratchpad lines of ROWS bytes
    parameter W_DEPTH = 256,     // weight scratchpad lines of COLS bytes
    parameter ACC_DEPTH = 256,   // accumulator lines of COLS int32
    parameter VEC_DEPTH = 256,   // vector scratchpad lines of COLS bytes
    parameter BUS_BYTES = 16,    // DRAM bus width
    parameter VEC_LANES = 4,     // vector unit lanes (divides COLS)
    parameter IMEM_DEPTH = 256   // instruction memory entries
) (
    input  wire                   clk,
    input  wire                   rst,
    // host: program the instruction memory, then pulse start
    input  wire                   imem_we,
    /* verilator lint_off UNUSEDSIGNAL */  // upper address bits unused below 64K entries
    input  wire [15:0]            imem_waddr,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [127:0]           imem_wdata,
    input  wire                   start,
    output wire                   busy,
    output reg                    halted,
    output reg                    error,
    output reg  [15:0]            pc,
    output reg  [31:0]            retired,
    output reg  [31:0]            cycles,
    // DRAM: reads return dram_rdata the cycle after dram_ren
    output reg                    dram_ren,
    output reg  [31:0]            dram_raddr,
    input  wire [BUS_BYTES*8-1:0] dram_rdata,
    output reg                    dram_wen,
    output reg  [31:0]            dram_waddr,
    output reg  [BUS_BYTES*8-1:0] dram_wdata,
    output reg  [BUS_BYTES-1:0]   dram_wstrb
);
    localparam IN_AW  = (IN_DEPTH  > 1) ? $clog2(IN_DEPTH)  : 1;
    localparam W_AW   = (W_DEPTH   > 1) ? $clog2(W_DEPTH)   : 1;
    localparam ACC_AW = (ACC_DEPTH > 1) ? $clog2(ACC_DEPTH) : 1;
    localparam VEC_AW = (VEC_DEPTH > 1) ? $clog2(VEC_DEPTH) : 1;
    localparam IM_AW  = (IMEM_DEPTH > 1) ? $clog2(IMEM_DEPTH) : 1;
    localparam MAXL   = (ROWS > 8*COLS) ? ROWS : 8*COLS;            // longest line in bytes
    localparam MAXB   = (MAXL + BUS_BYTES - 1) / BUS_BYTES;        // beats of the longest line
    localparam LB     = MAXB * BUS_BYTES * 8;                      // line buffer bits
    localparam IWB    = ((ROWS > COLS) ? ROWS : COLS) * 8;         // input/weight line bits
    localparam integer VPASS_I = COLS / VEC_LANES;
    localparam integer FLUSH_I = (ROWS + COLS >= 3) ? ROWS + COLS - 3 : 0;   // OS flush cycles - 1
    localparam integer ROWS_I = ROWS;
    localparam integer COLS_I = COLS;
    localparam [15:0] VPASS  = VPASS_I[15:0];
    localparam [15:0] ROWS16 = ROWS_I[15:0];
    localparam [15:0] COLS16 = COLS_I[15:0];
    localparam [15:0] FLUSH  = FLUSH_I[15:0];

    localparam [3:0] OP_LOAD = 4'd1, OP_STORE = 4'd2, OP_MATMUL = 4'd3, OP_REQUANT = 4'd4,
                     OP_VECTOR = 4'd5, OP_SYNC = 4'd6, OP_HALT = 4'd7;
    localparam [7:0] BUF_IN = 8'd0, BUF_W = 8'd1, BUF_VEC = 8'd2, BUF_PAR = 8'd3, BUF_ACC = 8'd4;

    localparam [4:0] S_IDLE = 5'd0, S_FETCH = 5'd1, S_DECODE = 5'd2, S_DONE = 5'd3, S_HALT = 5'd4,
                     S_LD_ISSUE = 5'd5, S_LD_DRAIN = 5'd6,
                     S_ST_READ = 5'd8, S_ST_LATCH = 5'd9, S_ST_BEAT = 5'd10,
                     S_MM_WLOAD = 5'd11, S_MM_CLEAR = 5'd12, S_MM_STREAM = 5'd13, S_MM_FLUSH = 5'd14,
                     S_MM_DRAIN = 5'd15, S_MM_WAIT = 5'd16,
                     S_RQ = 5'd17, S_RQ_WAIT = 5'd18,
                     S_VEC_READ = 5'd19, S_VEC_OP = 5'd20, S_VEC_WRITE = 5'd21,
                     S_ST_WAIT = 5'd23, S_VEC_WAIT = 5'd24;

    reg [4:0] state;
    assign busy = (state != S_IDLE) && (state != S_HALT);

    // ---- instruction memory and fields ---------------------------------------------------------
    reg [127:0] imem [0:IMEM_DEPTH-1];
    reg [127:0] ir;
    integer ii;
    initial for (ii = 0; ii < IMEM_DEPTH; ii = ii + 1) imem[ii] = 128'd0;
    always @(posedge clk) if (imem_we) imem[imem_waddr[IM_AW-1:0]] <= imem_wdata;

    // Deliberate lint waiver: instruction fields and host addresses are wider than the scratchpads
    // of small configurations, and only lane 0's valid / spare param bits are used.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [3:0]  f_op     = ir[3:0];
    wire [7:0]  f_func   = ir[11:4];
    wire [15:0] f_x      = ir[27:12];
    wire [15:0] f_y      = ir[43:28];
    wire [15:0] f_z      = ir[59:44];
    wire [15:0] f_n      = ir[75:60];
    wire [31:0] f_dram   = ir[107:76];
    wire [19:0] f_stride = ir[127:108];
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- sequencing registers --------------------------------------------------------------------
    reg [15:0]  line;        // current line index within the instruction
    reg [15:0]  beat;        // beat within a line / generic counter
    reg [15:0]  nbeats;      // beats per line of the current transfer
    reg [15:0]  len;         // bytes per line of the current transfer
    reg [31:0]  laddr;       // DRAM address of the current line
    reg [LB-1:0] lbuf;       // line buffer between DRAM and the scratchpads
    reg         cap_p, cap_v; // a DRAM read was issued / is returning this cycle
    reg [15:0]  cap_pslot;
    reg [15:0]  cap_slot;
    reg         cap_plast, cap_last; // ... and it is the last beat of its line
    reg         ld_wr;       // LOAD: lbuf holds a complete line: write it to the scratchpad now
    reg [15:0]  wline;       // LOAD: lines written so far
    reg [IWB-1:0] ld_wdata;  // LOAD: the line being written to the input/weight scratchpad
    /* verilator lint_off UNUSEDSIGNAL */  // bytes 6..7 of each channel are padding
    reg [COLS*64-1:0] params; // per-column requant parameters (8 bytes each)
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- scratchpads -------------------------------------------------------------------------------
    reg              in_ren, w_ren, acc_ren, vec_ren;
    reg [IN_AW-1:0]  in_raddr;
    reg [W_AW-1:0]   w_raddr;
    reg [ACC_AW-1:0] acc_raddr;
    reg [VEC_AW-1:0] vec_raddr_a, vec_raddr_b;
    reg              in_wen, w_wen, acc_wen, vec_wen;
    reg [IN_AW-1:0]  in_waddr;
    reg [W_AW-1:0]   w_waddr;
    reg [ACC_AW-1:0] acc_waddr;
    reg [VEC_AW-1:0] vec_waddr;
    reg [COLS*32-1:0] acc_wdata;
    reg [COLS*8-1:0]  vec_wdata;
    wire [ROWS*8-1:0]  in_rdata;
    wire [COLS*8-1:0]  w_rdata;
    wire [COLS*32-1:0] acc_rdata;
    wire [COLS*8-1:0]  vec_rdata_a, vec_rdata_b;

    spad #(.WIDTH(ROWS*8), .DEPTH(IN_DEPTH)) u_in_sp (
        .clk(clk), .ren(in_ren), .raddr(in_raddr), .rdata(in_rdata),
        .wen(in_wen), .waddr(in_waddr), .wdata(ld_wdata[ROWS*8-1:0]));
    spad #(.WIDTH(COLS*8), .DEPTH(W_DEPTH)) u_w_sp (
        .clk(clk), .ren(w_ren), .raddr(w_raddr), .rdata(w_rdata),
        .wen(w_wen), .waddr(w_waddr), .wdata(ld_wdata[COLS*8-1:0]));
    spad #(.WIDTH(COLS*32), .DEPTH(ACC_DEPTH)) u_acc_sp (
        .clk(clk), .ren(acc_ren), .raddr(acc_raddr), .rdata(acc_rdata),
        .wen(acc_wen), .waddr(acc_waddr), .wdata(acc_wdata));
    // The vector scratchpad has two read ports: two copies written together.
    spad #(.WIDTH(COLS*8), .DEPTH(VEC_DEPTH)) u_vec_sp_a (
        .clk(clk), .ren(vec_ren), .raddr(vec_raddr_a), .rdata(vec_rdata_a),
        .wen(vec_wen), .waddr(vec_waddr), .wdata(vec_wdata));
    spad #(.WIDTH(COLS*8), .DEPTH(VEC_DEPTH)) u_vec_sp_b (
        .clk(clk), .ren(vec_ren), .raddr(vec_raddr_b), .rdata(vec_rdata_b),
        .wen(vec_wen), .waddr(vec_waddr), .wdata(vec_wdata));

    // ---- systolic array --------------------------------------------------------------------------
    // Scratchpad reads have two cycles of latency from the state that issues them (registered
    // enable, then the SRAM's registered output), so every consumer sees a two-stage valid.
    reg  arr_pend, arr_in_valid;
    reg  ws_load, os_clear, os_shift;
    wire arr_out_valid;
    wire [COLS*32-1:0] arr_out_c;
    systolic_array #(.ROWS(ROWS), .COLS(COLS), .DATAFLOW(DATAFLOW)) u_array (
        .clk(clk), .in_valid(arr_in_valid), .in_a(in_rdata), .in_b(w_rdata),
        .ws_load(ws_load), .os_clear(os_clear), .os_shift(os_shift),
        .out_valid(arr_out_valid), .out_c(arr_out_c));

    // Accumulator read-modify-write: read at out_valid, write (old + new, or new) one cycle later.
    reg               mm_acc;     // MATMUL accumulate flag
    reg [15:0]        out_cnt, wr_cnt;
    reg               rmw_v, rmw_v2;
    reg [ACC_AW-1:0]  rmw_addr, rmw_addr2;
    reg [COLS*32-1:0] rmw_data, rmw_data2;
    /* verilator lint_off UNUSEDSIGNAL */  // truncated to ACC_AW
    wire [15:0]       out_line = (DATAFLOW == 0) ? (f_z + out_cnt) : (f_z + ROWS16 - 16'd1 - out_cnt);
    /* verilator lint_on UNUSEDSIGNAL */
    wire [COLS*32-1:0] acc_sum;
    genvar g;
    generate
        for (g = 0; g < COLS; g = g + 1) begin : g_accadd
            assign acc_sum[32*g +: 32] = acc_rdata[32*g +: 32] + rmw_data2[32*g +: 32];
        end
    endgenerate
    wire mm_active = (state == S_MM_STREAM) || (state == S_MM_FLUSH) || (state == S_MM_DRAIN) ||
                     (state == S_MM_WAIT);

    // ---- requantization lanes ------------------------------------------------------------------
    reg               rq_pend, rq_in_valid;
    /* verilator lint_off UNUSEDSIGNAL */  // all lanes share one valid; lane 0's is used
    wire [COLS-1:0]   rq_out_valid;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [COLS*8-1:0] rq_y;
    generate
        for (g = 0; g < COLS; g = g + 1) begin : g_rq
            requant u_rq (
                .clk(clk), .in_valid(rq_in_valid), .acc(acc_rdata[32*g +: 32]),
                .multiplier(params[64*g +: 32]), .shift(params[64*g+32 +: 6]),
                .zero_point(params[64*g+40 +: 8]),
                .out_valid(rq_out_valid[g]), .y(rq_y[8*g +: 8]));
        end
    endgenerate

    // ---- vector unit -------------------------------------------------------------------------------
    wire [COLS*8-1:0] vu_y;
    wire              vu_ok;
    vector_unit #(.COLS(COLS), .VEC_LANES(VEC_LANES)) u_vu (
        .clk(clk), .en(state == S_VEC_OP), .beat(beat), .line(line), .funct(f_func),
        .a_line(vec_rdata_a), .b_line(vec_rdata_b), .y_line(vu_y), .ok(vu_ok));

    // ---- helpers -----------------------------------------------------------------------------------
    function [15:0] line_bytes;
        input [7:0] bufsel;
        case (bufsel)
            BUF_IN:  line_bytes = ROWS16;
            BUF_W:   line_bytes = COLS16;
            BUF_VEC: line_bytes = COLS16;
            BUF_PAR: line_bytes = {COLS16[12:0], 3'b000};
            default: line_bytes = {COLS16[13:0], 2'b00};
        endcase
    endfunction
    wire [15:0] dec_len   = line_bytes(f_func);
    wire [15:0] dec_beats = (dec_len + BUS_BYTES[15:0] - 16'd1) / BUS_BYTES[15:0];
    wire [15:0] rem_bytes = len - beat * BUS_BYTES[15:0];
    wire [BUS_BYTES-1:0] strb_last;
    generate
        for (g = 0; g < BUS_BYTES; g = g + 1) begin : g_strb
            assign strb_last[g] = (rem_bytes > g);
        end
    endgenerate

    // ---- the controller ----------------------------------------------------------------------------
    initial begin
        state = S_IDLE; halted = 1'b0; error = 1'b0; pc = 16'd0; retired = 32'd0; cycles = 32'd0;
    end

    always @(posedge clk) begin
        // defaults: single-cycle strobes
        dram_ren <= 1'b0; dram_wen <= 1'b0;
        in_ren <= 1'b0; w_ren <= 1'b0; acc_ren <= 1'b0; vec_ren <= 1'b0;
        in_wen <= 1'b0; w_wen <= 1'b0; acc_wen <= 1'b0; vec_wen <= 1'b0;
        arr_pend <= 1'b0; ws_load <= 1'b0; os_clear <= 1'b0; os_shift <= 1'b0;
        rq_pend <= 1'b0;
        cap_p <= 1'b0;
        rmw_v <= 1'b0;
        arr_in_valid <= arr_pend;
        rq_in_valid <= rq_pend;
        cap_v <= cap_p; cap_slot <= cap_pslot; cap_last <= cap_plast;
        ld_wr <= cap_v & cap_last;
        rmw_v2 <= rmw_v; rmw_addr2 <= rmw_addr; rmw_data2 <= rmw_data;

        if (busy) cycles <= cycles + 32'd1;
        if (cap_v) lbuf[cap_slot*BUS_BYTES*8 +: BUS_BYTES*8] <= dram_rdata;

        // accumulator RMW pipeline (MATMUL)
        if (mm_active && arr_out_valid) begin
            acc_ren   <= 1'b1;
            acc_raddr <= out_line[ACC_AW-1:0];
            rmw_v     <= 1'b1;
            rmw_addr  <= out_line[ACC_AW-1:0];
            rmw_data  <= arr_out_c;
            out_cnt   <= out_cnt + 16'd1;
        end
        if (rmw_v2) begin
            acc_wen   <= 1'b1;
            acc_waddr <= rmw_addr2;
            acc_wdata <= mm_acc ? acc_sum : rmw_data2;
            wr_cnt    <= wr_cnt + 16'd1;
        end

        if (rst) begin
            state <= S_IDLE; halted <= 1'b0; error <= 1'b0; pc <= 16'd0;
            retired <= 32'd0; cycles <= 32'd0;
        end else case (state)
            S_IDLE, S_HALT: if (start) begin
                state <= S_FETCH; halted <= 1'b0; error <= 1'b0; pc <= 16'd0;
                retired <= 32'd0; cycles <= 32'd0;
            end
            S_FETCH: begin
                ir <= imem[pc[IM_AW-1:0]];
                state <= S_DECODE;
            end
            S_DECODE: begin
                line <= 16'd0; beat <= 16'd0; out_cnt <= 16'd0; wr_cnt <= 16'd0; wline <= 16'd0;
                len <= dec_len; nbeats <= dec_beats; laddr <= f_dram;
                case (f_op)
                    OP_LOAD: begin
                        if (f_func > BUF_ACC) begin error <= 1'b1; state <= S_HALT; end
                        else state <= (f_n == 16'd0) ? S_DONE : S_LD_ISSUE;
                    end
                    OP_STORE: begin
                        if (f_func != BUF_VEC && f_func != BUF_ACC) begin error <= 1'b1; state <= S_HALT; end
                        else state <= (f_n == 16'd0) ? S_DONE : S_ST_READ;
                    end
                    OP_MATMUL: begin
                        mm_acc <= f_func[0];
                        if (DATAFLOW == 0) state <= f_func[1] ? S_MM_WLOAD : S_MM_STREAM;
                        else state <= S_MM_CLEAR;
                    end
                    OP_REQUANT: state <= (f_n == 16'd0) ? S_DONE : S_RQ;
                    OP_VECTOR: begin
                        if (!vu_ok) begin error <= 1'b1; state <= S_HALT; end
                        else state <= (f_n == 16'd0) ? S_DONE : S_VEC_READ;
                    end
                    OP_SYNC: state <= S_DONE;
                    OP_HALT: begin halted <= 1'b1; retired <= retired + 32'd1; state <= S_HALT; end
                    default: begin error <= 1'b1; state <= S_HALT; end
                endcase
            end
            S_DONE: begin
                retired <= retired + 32'd1;
                pc <= pc + 16'd1;
                state <= S_FETCH;
            end

            // ---- LOAD: DRAM -> scratchpad, one line at a time ----
            S_LD_ISSUE: begin   // one beat per cycle, across line boundaries
                dram_ren <= 1'b1;
                dram_raddr <= laddr + {16'd0, beat} * BUS_BYTES;
                cap_p <= 1'b1; cap_pslot <= beat; cap_plast <= (beat == nbeats - 16'd1);
                if (beat == nbeats - 16'd1) begin
                    beat <= 16'd0;
                    laddr <= laddr + {12'd0, f_stride};
                    line <= line + 16'd1;
                    if (line == f_n - 16'd1) state <= S_LD_DRAIN;
                end else beat <= beat + 16'd1;
            end
            S_LD_DRAIN: begin   // the last line lands and is written
                if (ld_wr && wline == f_n - 16'd1) state <= S_DONE;
            end

            // ---- STORE: scratchpad -> DRAM ----
            S_ST_READ: begin
                if (f_func == BUF_VEC) begin vec_ren <= 1'b1; vec_raddr_a <= f_x[VEC_AW-1:0] + line[VEC_AW-1:0]; end
                else begin acc_ren <= 1'b1; acc_raddr <= f_x[ACC_AW-1:0] + line[ACC_AW-1:0]; end
                state <= S_ST_WAIT;
            end
            S_ST_WAIT: state <= S_ST_LATCH;
            S_ST_LATCH: begin
                lbuf <= {LB{1'b0}};
                if (f_func == BUF_VEC) lbuf[COLS*8-1:0] <= vec_rdata_a;
                else lbuf[COLS*32-1:0] <= acc_rdata;
                beat <= 16'd0;
                state <= S_ST_BEAT;
            end
            S_ST_BEAT: begin
                dram_wen <= 1'b1;
                dram_waddr <= laddr + {16'd0, beat} * BUS_BYTES;
                dram_wdata <= lbuf[beat*BUS_BYTES*8 +: BUS_BYTES*8];
                dram_wstrb <= strb_last;
                if (beat == nbeats - 16'd1) begin
                    laddr <= laddr + {12'd0, f_stride};
                    line <= line + 16'd1;
                    state <= (line == f_n - 16'd1) ? S_DONE : S_ST_READ;
                end else beat <= beat + 16'd1;
            end

            // ---- MATMUL ----
            S_MM_WLOAD: begin   // WS: push weight lines ROWS-1 .. 0 down the columns
                if (beat < ROWS16) begin
                    w_ren <= 1'b1;
                    w_raddr <= f_y[W_AW-1:0] + ROWS_I[W_AW-1:0] - 1'b1 - beat[W_AW-1:0];
                end
                if (beat != 16'd0) ws_load <= 1'b1;
                if (beat == ROWS16) begin beat <= 16'd0; state <= S_MM_STREAM; end
                else beat <= beat + 16'd1;
            end
            S_MM_CLEAR: begin   // OS: zero the accumulators
                os_clear <= 1'b1;
                state <= S_MM_STREAM;
            end
            S_MM_STREAM: begin
                if (line == f_n) begin
                    beat <= 16'd0;
                    state <= (DATAFLOW == 0) ? S_MM_WAIT : S_MM_FLUSH;
                end else begin
                    in_ren <= 1'b1; in_raddr <= f_x[IN_AW-1:0] + line[IN_AW-1:0];
                    if (DATAFLOW != 0) begin w_ren <= 1'b1; w_raddr <= f_y[W_AW-1:0] + line[W_AW-1:0]; end
                    arr_pend <= 1'b1;
                    line <= line + 16'd1;
                end
            end
            S_MM_FLUSH: begin   // OS: the last operands reach PE(ROWS-1, COLS-1)
                if (beat == FLUSH) begin beat <= 16'd0; state <= S_MM_DRAIN; end
                else beat <= beat + 16'd1;
            end
            S_MM_DRAIN: begin   // OS: shift ROWS result rows out of the bottom
                os_shift <= 1'b1;
                if (beat == ROWS16 - 16'd1) state <= S_MM_WAIT;
                else beat <= beat + 16'd1;
            end
            S_MM_WAIT: begin
                if (wr_cnt == ((DATAFLOW == 0) ? f_n : ROWS16)) state <= S_DONE;
            end

            // ---- REQUANT: acc -> requant lanes -> vector scratchpad ----
            S_RQ: begin
                acc_ren <= 1'b1; acc_raddr <= f_x[ACC_AW-1:0] + line[ACC_AW-1:0];
                line <= line + 16'd1;
                if (line == f_n - 16'd1) state <= S_RQ_WAIT;
            end
            S_RQ_WAIT: if (wr_cnt == f_n) state <= S_DONE;

            // ---- VECTOR: vec[z+i] = op(vec[x+i], vec[y+i]) ----
            S_VEC_READ: begin
                vec_ren <= 1'b1;
                vec_raddr_a <= f_x[VEC_AW-1:0] + line[VEC_AW-1:0];
                vec_raddr_b <= f_y[VEC_AW-1:0] + line[VEC_AW-1:0];
                beat <= 16'd0;
                state <= S_VEC_WAIT;
            end
            S_VEC_WAIT: state <= S_VEC_OP;
            S_VEC_OP: begin
                if (beat == VPASS - 16'd1) state <= S_VEC_WRITE;
                else beat <= beat + 16'd1;
            end
            S_VEC_WRITE: begin
                vec_wen <= 1'b1;
                vec_waddr <= f_z[VEC_AW-1:0] + line[VEC_AW-1:0];
                vec_wdata <= vu_y;
                line <= line + 16'd1;
                state <= (line == f_n - 16'd1) ? S_DONE : S_VEC_READ;
            end
            default: state <= S_IDLE;
        endcase

        // LOAD write side: lbuf holds line `wline` complete (its last beat landed last cycle); the next
        // line's first beat lands in lbuf at the end of this cycle, so the line is latched here.
        if (ld_wr) begin
            case (f_func)
                BUF_IN:  begin in_wen <= 1'b1; in_waddr <= f_x[IN_AW-1:0] + wline[IN_AW-1:0];
                               ld_wdata <= lbuf[IWB-1:0]; end
                BUF_W:   begin w_wen <= 1'b1; w_waddr <= f_x[W_AW-1:0] + wline[W_AW-1:0];
                               ld_wdata <= lbuf[IWB-1:0]; end
                BUF_VEC: begin vec_wen <= 1'b1; vec_waddr <= f_x[VEC_AW-1:0] + wline[VEC_AW-1:0];
                               vec_wdata <= lbuf[COLS*8-1:0]; end
                BUF_PAR: params <= lbuf[COLS*64-1:0];
                default: begin acc_wen <= 1'b1; acc_waddr <= f_x[ACC_AW-1:0] + wline[ACC_AW-1:0];
                               acc_wdata <= lbuf[COLS*32-1:0]; end
            endcase
            wline <= wline + 16'd1;
        end

        // REQUANT issue pipeline and write-back (independent of the state register)
        if (state == S_RQ) rq_pend <= 1'b1;
        if (rq_out_valid[0]) begin
            vec_wen <= 1'b1;
            vec_waddr <= f_z[VEC_AW-1:0] + wr_cnt[VEC_AW-1:0];
            vec_wdata <= rq_y;
            wr_cnt <= wr_cnt + 16'd1;
        end
    end
endmodule
`default_nettype wire
