// accel_top: int8 systolic-array accelerator executing a 128-bit instruction stream with decoupled
// access/execute.
//
// Instruction word (see backends/rtl/isa.py, the single definition of the encoding):
//   [3:0] op  [11:4] func  [27:12] x  [43:28] y  [59:44] z  [75:60] n  [107:76] dram  [127:108] stride
//   LOAD    func=buffer x=sp line  n=lines  dram=byte addr  stride=bytes between lines (0: one line read
//           once and written n times)
//   STORE   func=buffer x=sp line  n=lines  dram, stride        (buffer VEC int8 or ACC int32)
//   MATMUL  func={load_w, accumulate} x=input line y=weight line z=acc line n=WS: rows of A / OS: K
//   REQUANT x=acc line z=vec line n=lines                       (per-column params from PARAM)
//   VECTOR  func=vec op x=vec src1 y=vec src2 z=vec dst n=lines
//   SYNC    fence: waits until every unit is idle
//   HALT    fence, then stop; `halted` rises and `cycles` freezes
//
// Three units run concurrently: LD (LOAD: DRAM read port -> scratchpads), EX (MATMUL, REQUANT, VECTOR;
// a one-entry queue `nxt` ahead of the running instruction `cur`) and ST (STORE: scratchpads -> DRAM
// write port). The front end fetches in order and dispatches one instruction per cycle to its unit when
// the unit has room and a scoreboard finds no conflict with what the other units have in flight: an
// overlap of scratchpad line ranges (or DRAM byte ranges between LD and ST) where one side writes, or a
// scratchpad port both would use. Every program therefore computes exactly what sequential execution
// computes, whatever the timing; backends/rtl/isa_model.py reproduces the schedule cycle for cycle.
//
// WS MATMUL: each PE holds two weight banks. While `cur` streams rows with one bank, the weight loader
// shifts the weights of the queued MATMUL into the other (once the rows that used it have left the
// array), and the next MATMUL streams right behind the current one, without draining the array, when
// their accumulator rows cannot race in the read-modify-write pipeline.
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
    localparam integer FLUSH_I = ROWS + COLS - 2;                          // OS flush cycles - 1
    localparam integer BKW_I = (ROWS + COLS >= 3) ? ROWS + COLS - 3 : 0;
    localparam integer ROWS_I = ROWS;
    localparam integer COLS_I = COLS;
    localparam integer TQ = ROWS + COLS + 1;   // WS: cycles from a row's issue to its array output - 1
    localparam [15:0] VPASS  = VPASS_I[15:0];
    localparam [15:0] ROWS16 = ROWS_I[15:0];
    localparam [15:0] COLS16 = COLS_I[15:0];
    localparam [15:0] FLUSH  = FLUSH_I[15:0];
    localparam [8:0]  BK_INIT = BKW_I[8:0];   // a weight bank is free this many cycles after its last row
    localparam [15:0] CHAIN_MIN = 16'd4;       // WS: MATMULs of >= 4 rows may be followed without a drain

    localparam [3:0] OP_LOAD = 4'd1, OP_STORE = 4'd2, OP_MATMUL = 4'd3, OP_REQUANT = 4'd4,
                     OP_VECTOR = 4'd5, OP_SYNC = 4'd6, OP_HALT = 4'd7;
    localparam [7:0] BUF_IN = 8'd0, BUF_W = 8'd1, BUF_VEC = 8'd2, BUF_PAR = 8'd3, BUF_ACC = 8'd4;

    localparam [3:0] X_IDLE = 4'd0, X_MM_STREAM = 4'd1, X_OS_CLEAR = 4'd2, X_OS_FLUSH = 4'd3,
                     X_OS_DRAIN = 4'd4, X_OS_WAIT = 4'd5, X_RQ = 4'd6, X_RQ_WAIT = 4'd7,
                     X_VEC_READ = 4'd8, X_VEC_WAIT = 4'd9, X_VEC_OP = 4'd10, X_VEC_WRITE = 4'd11;

    reg running;
    assign busy = running;

    // ---- instruction memory and the front end ----------------------------------------------------
    reg [127:0] imem [0:IMEM_DEPTH-1];
    reg [127:0] fe_ir;
    reg         fe_v;
    integer ii;
    initial for (ii = 0; ii < IMEM_DEPTH; ii = ii + 1) imem[ii] = 128'd0;
    always @(posedge clk) if (imem_we) imem[imem_waddr[IM_AW-1:0]] <= imem_wdata;

    wire [3:0]  d_op     = fe_ir[3:0];
    wire [7:0]  d_func   = fe_ir[11:4];
    wire [15:0] d_x      = fe_ir[27:12];
    wire [15:0] d_y      = fe_ir[43:28];
    wire [15:0] d_z      = fe_ir[59:44];
    wire [15:0] d_n      = fe_ir[75:60];
    wire [31:0] d_dram   = fe_ir[107:76];
    wire [19:0] d_stride = fe_ir[127:108];

    // ---- helpers -----------------------------------------------------------------------------------
    // (old-style function ports: pyverilog does not parse ANSI function headers)
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
    // [a, a+na) and [b, b+nb) share a line (empty ranges share nothing)
    function ovl;
        input [15:0] a;
        input [15:0] na;
        input [15:0] b;
        input [15:0] nb;
        ovl = (na != 16'd0) && (nb != 16'd0) && ({1'b0, a} < {1'b0, b} + {1'b0, nb}) &&
              ({1'b0, b} < {1'b0, a} + {1'b0, na});
    endfunction
    wire [15:0] dec_len   = line_bytes(d_func);
    wire [15:0] dec_beats = (dec_len + BUS_BYTES[15:0] - 16'd1) / BUS_BYTES[15:0];
    // DRAM bytes a LOAD/STORE touches: [dram, dram + (n-1)*stride + line bytes)
    wire [39:0] d_dlo = {8'd0, d_dram};
    wire [39:0] d_dhi = {8'd0, d_dram} + {20'd0, d_stride} * {24'd0, d_n - 16'd1} + {24'd0, dec_len};

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
    reg [IWB-1:0]     ld_wdata;   // LOAD: the line being written to the input/weight scratchpad
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

    // ---- LD unit state -------------------------------------------------------------------------------
    reg          ld_busy, ld_iss, ld_rw;
    reg [7:0]    ld_buf;
    reg [15:0]   ld_x, ld_n, ld_line, ld_beat, ld_nb, ld_wline;
    reg [19:0]   ld_stride;
    reg [31:0]   laddr;
    reg [39:0]   ld_dlo, ld_dhi;
    reg [LB-1:0] lbuf;        // line buffer between DRAM and the scratchpads
    reg          cap_p, cap_v; // a DRAM read was issued / is returning this cycle
    reg [15:0]   cap_pslot, cap_slot;
    reg          cap_plast, cap_last; // ... and it is the last beat of its line
    reg          ld_wr;       // lbuf holds a complete line: write it to the scratchpad now
    wire         ld_wr_any = ld_wr | ld_rw;   // ld_rw: stride-0 LOAD, the same line again
    /* verilator lint_off UNUSEDSIGNAL */  // bytes 6..7 of each channel are padding
    reg [COLS*64-1:0] params; // per-column requant parameters (8 bytes each)
    /* verilator lint_on UNUSEDSIGNAL */

    // ---- ST unit state -------------------------------------------------------------------------------
    reg          st_busy, st_p1, st_p2, st_out;
    reg [7:0]    st_buf;
    reg [15:0]   st_x, st_n, st_rline, st_oline, st_ph, st_nb, st_len, st_obeat;
    reg [19:0]   st_stride;
    reg [31:0]   st_laddr;
    reg [39:0]   st_dlo, st_dhi;
    reg [LB-1:0] st_lbuf;
    wire [LB-1:0] st_line = (st_buf == BUF_VEC) ? {{(LB-COLS*8){1'b0}}, vec_rdata_a}
                                                : {{(LB-COLS*32){1'b0}}, acc_rdata};
    function [BUS_BYTES-1:0] strb_of;
        input [15:0] rem;
        integer k;
        begin
            for (k = 0; k < BUS_BYTES; k = k + 1) strb_of[k] = (rem > k[15:0]);
        end
    endfunction

    // ---- EX unit state -------------------------------------------------------------------------------
    reg [3:0]  x_st;
    reg        xn_v, xn_wd;
    reg [3:0]  xn_op;
    reg [7:0]  xn_func;
    reg [15:0] xn_x, xn_y, xn_z, xn_n;
    reg [3:0]  xc_op;
    reg [7:0]  xc_func;
    reg [15:0] xc_x, xc_y, xc_z, xc_n;
    reg [15:0] x_line, x_beat, out_cnt, wr_cnt, rq_cnt;
    reg        lbank, cbank;             // WS: bank of the last loaded weights / of `cur`
    reg        wl_act, wl_bank;          // WS weight loader
    reg [15:0] wl_beat, wl_y;
    reg [8:0]  bk_cnt0, bk_cnt1;          // WS: cycles until the rows of a bank have left the array
    reg [15:0] inflight;                 // WS: rows issued whose accumulator write is pending
    reg        last_mm_v;
    reg [15:0] last_z, last_n;

    wire cur_mm  = (x_st != X_IDLE) && (xc_op == OP_MATMUL);
    wire cur_rq  = (x_st != X_IDLE) && (xc_op == OP_REQUANT);
    wire cur_vec = (x_st != X_IDLE) && (xc_op == OP_VECTOR);
    wire nxt_mm  = xn_v && (xn_op == OP_MATMUL);
    wire nxt_rq  = xn_v && (xn_op == OP_REQUANT);
    wire nxt_vec = xn_v && (xn_op == OP_VECTOR);
    wire xn_lw   = (DATAFLOW == 0) && xn_func[1];
    wire drained = (inflight == 16'd0);

    // ---- systolic array --------------------------------------------------------------------------
    // Scratchpad reads have two cycles of latency from the state that issues them (registered
    // enable, then the SRAM's registered output), so every consumer sees a two-stage valid.
    reg  arr_pend, arr_in_valid, sel_p, sel_v;
    reg  ws_load, ws_lsel, os_clear, os_shift;
    wire arr_out_valid;
    wire [COLS*32-1:0] arr_out_c;
    systolic_array #(.ROWS(ROWS), .COLS(COLS), .DATAFLOW(DATAFLOW)) u_array (
        .clk(clk), .in_valid(arr_in_valid), .in_sel(sel_v), .in_a(in_rdata), .in_b(w_rdata),
        .ws_load(ws_load), .ws_lsel(ws_lsel), .os_clear(os_clear), .os_shift(os_shift),
        .out_valid(arr_out_valid), .out_c(arr_out_c));

    // WS: each row's accumulator line and accumulate flag travel beside it (TQ stages)
    reg [ACC_AW-1:0] tq_addr [0:TQ-1];
    reg              tq_acc  [0:TQ-1];
    integer ti;
    initial for (ti = 0; ti < TQ; ti = ti + 1) begin tq_addr[ti] = {ACC_AW{1'b0}}; tq_acc[ti] = 1'b0; end

    // Accumulator read-modify-write: read at out_valid, write (old + new, or new) two cycles later.
    reg               rmw_v, rmw_v2, rmw_acc, rmw_acc2;
    reg [ACC_AW-1:0]  rmw_addr, rmw_addr2;
    reg [COLS*32-1:0] rmw_data, rmw_data2;
    /* verilator lint_off UNUSEDSIGNAL */  // truncated to ACC_AW
    wire [15:0]       os_line = xc_z + ROWS16 - 16'd1 - out_cnt;
    wire [15:0]       x_in_line = xc_x + x_line;
    wire [15:0]       x_w_line = xc_y + x_line;
    wire [15:0]       x_acc_line = xc_z + x_line;
    wire [15:0]       wl_line = wl_y + ROWS16 - 16'd1 - wl_beat;
    wire [15:0]       wl_line0 = xn_y + ROWS16 - 16'd1;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACC_AW-1:0] out_addr = (DATAFLOW == 0) ? tq_addr[TQ-1] : os_line[ACC_AW-1:0];
    wire              out_acc  = (DATAFLOW == 0) ? tq_acc[TQ-1] : xc_func[0];
    wire [COLS*32-1:0] acc_sum;
    genvar g;
    generate
        for (g = 0; g < COLS; g = g + 1) begin : g_accadd
            assign acc_sum[32*g +: 32] = acc_rdata[32*g +: 32] + rmw_data2[32*g +: 32];
        end
    endgenerate

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
    /* verilator lint_off UNUSEDSIGNAL */  // ok is checked at dispatch (dec_vok)
    wire              vu_ok;
    wire [7:0]        dec_vy;
    /* verilator lint_on UNUSEDSIGNAL */
    wire              dec_vok;
    vector_unit #(.COLS(COLS), .VEC_LANES(VEC_LANES)) u_vu (
        .clk(clk), .en(x_st == X_VEC_OP), .beat(x_beat), .line(x_line), .funct(xc_func),
        .a_line(vec_rdata_a), .b_line(vec_rdata_b), .y_line(vu_y), .ok(vu_ok));
    vec_lane u_vdec (.funct(d_func), .a(8'd0), .b(8'd0), .y(dec_vy), .ok(dec_vok));

    // ---- dispatch: scoreboard --------------------------------------------------------------------
    wire d_ld  = (d_op == OP_LOAD);
    wire d_st  = (d_op == OP_STORE);
    wire d_mm  = (d_op == OP_MATMUL);
    wire d_rq  = (d_op == OP_REQUANT);
    wire d_vec = (d_op == OP_VECTOR);
    wire d_fence = (d_op == OP_SYNC) || (d_op == OP_HALT);
    wire d_bad = (d_op == 4'd0) || (d_op > OP_HALT) || (d_ld && d_func > BUF_ACC) ||
                 (d_st && d_func != BUF_VEC && d_func != BUF_ACC) || (d_vec && !dec_vok);
    wire d_noop = (d_ld || d_st || d_rq || d_vec) && (d_n == 16'd0);
    wire ex_empty = !xn_v && (x_st == X_IDLE) && drained;
    wire all_idle = !ld_busy && !st_busy && ex_empty;
    wire ld_st_dram = (d_dlo < st_dhi) && (st_dlo < d_dhi);
    wire st_ld_dram = (d_dlo < ld_dhi) && (ld_dlo < d_dhi);
    // a new LOAD against EX and ST
    wire ex_in_conf = (cur_mm && ovl(d_x, d_n, xc_x, xc_n)) || (nxt_mm && ovl(d_x, d_n, xn_x, xn_n));
    wire ex_w_conf = (DATAFLOW == 0) ? (nxt_mm && xn_lw && !xn_wd && ovl(d_x, d_n, xn_y, ROWS16))
                                     : ((cur_mm && ovl(d_x, d_n, xc_y, xc_n)) || (nxt_mm && ovl(d_x, d_n, xn_y, xn_n)));
    wire ex_acc_rq = (cur_rq && ovl(d_x, d_n, xc_x, xc_n)) || (nxt_rq && ovl(d_x, d_n, xn_x, xn_n));
    reg conf_ld;
    always @(*) begin
        case (d_func)
            BUF_IN:  conf_ld = ex_in_conf;
            BUF_W:   conf_ld = ex_w_conf;
            BUF_VEC: conf_ld = cur_rq || nxt_rq || cur_vec || nxt_vec;
            BUF_PAR: conf_ld = cur_rq || nxt_rq;
            default: conf_ld = cur_mm || nxt_mm || !drained || ex_acc_rq;
        endcase
        if (st_busy && ((st_buf == d_func && ovl(d_x, d_n, st_x, st_n)) || ld_st_dram)) conf_ld = 1'b1;
    end
    // a new STORE against EX and LD
    wire st_vec_ex = cur_vec || nxt_vec || (cur_rq && ovl(d_x, d_n, xc_z, xc_n)) ||
                     (nxt_rq && ovl(d_x, d_n, xn_z, xn_n));
    wire st_acc_ex = cur_mm || nxt_mm || !drained || cur_rq || nxt_rq;
    wire conf_st = ((d_func == BUF_VEC) ? st_vec_ex : st_acc_ex) ||
                   (ld_busy && ((ld_buf == d_func && ovl(d_x, d_n, ld_x, ld_n)) || st_ld_dram));
    // a new EX instruction against LD and ST
    wire [15:0] d_wn = (DATAFLOW == 0) ? (d_func[1] ? ROWS16 : 16'd0) : d_n;
    wire conf_mm = (ld_busy && ((ld_buf == BUF_IN && ovl(ld_x, ld_n, d_x, d_n)) ||
                                (ld_buf == BUF_W && ovl(ld_x, ld_n, d_y, d_wn)) || ld_buf == BUF_ACC)) ||
                   (st_busy && st_buf == BUF_ACC);
    wire conf_rq = (ld_busy && (ld_buf == BUF_VEC || ld_buf == BUF_PAR ||
                                (ld_buf == BUF_ACC && ovl(ld_x, ld_n, d_x, d_n)))) ||
                   (st_busy && (st_buf == BUF_ACC || (st_buf == BUF_VEC && ovl(st_x, st_n, d_z, d_n))));
    wire conf_vec = (ld_busy && ld_buf == BUF_VEC) || (st_busy && st_buf == BUF_VEC);
    wire can_disp = fe_v && !d_bad && (
        d_fence ? all_idle :
        d_noop  ? 1'b1 :
        d_ld    ? (!ld_busy && !conf_ld) :
        d_st    ? (!st_busy && !conf_st) :
        d_mm    ? (!xn_v && !conf_mm) :
        d_rq    ? (!xn_v && !conf_rq) :
                  (!xn_v && !conf_vec));
    wire disp = running && can_disp && (d_op != OP_HALT);

    // ---- EX: promotion of `nxt` to `cur` -----------------------------------------------------------
    wire chain_ok = last_mm_v && (last_n >= CHAIN_MIN) &&
                    (({1'b0, xn_z} >= {1'b0, last_z} + {1'b0, last_n}) || (xn_z <= last_z));
    wire xn_wready = !xn_lw || xn_wd;
    wire xn_ready = xn_v && (nxt_mm ? (xn_wready && ((DATAFLOW != 0) || chain_ok || drained)) : drained);
    wire stream_last = (x_st == X_MM_STREAM) && (x_line == xc_n - 16'd1);
    wire promote = ((x_st == X_IDLE) && xn_ready) ||
                   ((DATAFLOW == 0) && stream_last && nxt_mm && (xn_n != 16'd0) && xn_wready && chain_ok);
    wire issue_row = (x_st == X_MM_STREAM);
    wire wl_go = (DATAFLOW == 0) && !wl_act && nxt_mm && xn_lw && !xn_wd &&
                 (lbank ? (bk_cnt0 == 9'd0) : (bk_cnt1 == 9'd0));

    // ---- the controller ----------------------------------------------------------------------------
    reg ret_fe, ret_ld, ret_st, ret_ex;   // retirement pulses, counted the next cycle
    wire halt_now = running && fe_v && !d_bad && (d_op == OP_HALT) && all_idle;
    initial begin
        ret_fe = 1'b0; ret_ld = 1'b0; ret_st = 1'b0; ret_ex = 1'b0;
        running = 1'b0; halted = 1'b0; error = 1'b0; pc = 16'd0; retired = 32'd0; cycles = 32'd0;
        fe_v = 1'b0; ld_busy = 1'b0; st_busy = 1'b0; x_st = X_IDLE; xn_v = 1'b0; wl_act = 1'b0;
        lbank = 1'b0; cbank = 1'b0; inflight = 16'd0; bk_cnt0 = 9'd0; bk_cnt1 = 9'd0; last_mm_v = 1'b0;
        ld_iss = 1'b0; ld_rw = 1'b0; st_p1 = 1'b0; st_p2 = 1'b0; st_out = 1'b0;
        rmw_v = 1'b0; rmw_v2 = 1'b0; arr_pend = 1'b0; arr_in_valid = 1'b0; cap_p = 1'b0; cap_v = 1'b0;
        ld_wr = 1'b0; rq_pend = 1'b0; rq_in_valid = 1'b0; sel_p = 1'b0; sel_v = 1'b0; ws_load = 1'b0;
        ws_lsel = 1'b0; os_clear = 1'b0; os_shift = 1'b0; dram_ren = 1'b0; dram_wen = 1'b0;
        in_ren = 1'b0; w_ren = 1'b0; acc_ren = 1'b0; vec_ren = 1'b0;
        in_wen = 1'b0; w_wen = 1'b0; acc_wen = 1'b0; vec_wen = 1'b0;
        params = {COLS*64{1'b0}};   // a REQUANT before any LOAD PARAM gives 0, as in the model
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
        ld_rw <= 1'b0;
        arr_in_valid <= arr_pend;
        sel_v <= sel_p;
        rq_in_valid <= rq_pend;
        cap_v <= cap_p; cap_slot <= cap_pslot; cap_last <= cap_plast;
        ld_wr <= cap_v & cap_last;
        rmw_v2 <= rmw_v; rmw_addr2 <= rmw_addr; rmw_data2 <= rmw_data; rmw_acc2 <= rmw_acc;
        st_p1 <= 1'b0; st_p2 <= st_p1;
        ret_fe <= 1'b0; ret_ld <= 1'b0; ret_st <= 1'b0; ret_ex <= 1'b0;

        if (running) cycles <= cycles + 32'd1;
        if (cap_v) lbuf[cap_slot*BUS_BYTES*8 +: BUS_BYTES*8] <= dram_rdata;

        // WS row tags and weight-bank timers
        for (ti = 1; ti < TQ; ti = ti + 1) begin tq_addr[ti] <= tq_addr[ti-1]; tq_acc[ti] <= tq_acc[ti-1]; end
        tq_addr[0] <= x_acc_line[ACC_AW-1:0];
        tq_acc[0]  <= xc_func[0];
        if (issue_row && !cbank) bk_cnt0 <= BK_INIT; else if (bk_cnt0 != 9'd0) bk_cnt0 <= bk_cnt0 - 9'd1;
        if (issue_row && cbank)  bk_cnt1 <= BK_INIT; else if (bk_cnt1 != 9'd0) bk_cnt1 <= bk_cnt1 - 9'd1;
        if (DATAFLOW == 0)
            inflight <= inflight + {15'd0, issue_row} - {15'd0, rmw_v2};

        // accumulator RMW pipeline (MATMUL)
        if (arr_out_valid) begin
            acc_ren   <= 1'b1;
            acc_raddr <= out_addr;
            rmw_v     <= 1'b1;
            rmw_addr  <= out_addr;
            rmw_data  <= arr_out_c;
            rmw_acc   <= out_acc;
            out_cnt   <= out_cnt + 16'd1;
        end
        if (rmw_v2) begin
            acc_wen   <= 1'b1;
            acc_waddr <= rmw_addr2;
            acc_wdata <= rmw_acc2 ? acc_sum : rmw_data2;
            wr_cnt    <= wr_cnt + 16'd1;
        end

        // ---- front end: fetch and dispatch ----
        if (running) begin
            if (fe_v && d_bad) begin
                error <= 1'b1; running <= 1'b0;
            end else if (halt_now) begin
                halted <= 1'b1; running <= 1'b0;
            end else if (!fe_v || disp) begin
                fe_ir <= imem[pc[IM_AW-1:0]];
                fe_v <= 1'b1;
                pc <= pc + 16'd1;
            end
        end
        if (disp) begin
            if (d_noop || d_op == OP_SYNC) ret_fe <= 1'b1;
            else if (d_ld) begin
                ld_busy <= 1'b1; ld_iss <= 1'b1; ld_buf <= d_func; ld_x <= d_x; ld_n <= d_n;
                ld_stride <= d_stride; laddr <= d_dram; ld_nb <= dec_beats; ld_line <= 16'd0;
                ld_beat <= 16'd0; ld_wline <= 16'd0; ld_dlo <= d_dlo; ld_dhi <= d_dhi;
            end else if (d_st) begin
                st_busy <= 1'b1; st_buf <= d_func; st_x <= d_x; st_n <= d_n; st_stride <= d_stride;
                st_laddr <= d_dram; st_nb <= dec_beats; st_len <= dec_len; st_rline <= 16'd0;
                st_oline <= 16'd0; st_ph <= 16'd0; st_out <= 1'b0; st_dlo <= d_dlo; st_dhi <= d_dhi;
            end else begin
                xn_v <= 1'b1; xn_wd <= 1'b0; xn_op <= d_op; xn_func <= d_func;
                xn_x <= d_x; xn_y <= d_y; xn_z <= d_z; xn_n <= d_n;
            end
        end

        // ---- LD: DRAM -> scratchpad, one beat per cycle across line boundaries ----
        if (ld_iss) begin
            dram_ren <= 1'b1;
            dram_raddr <= laddr + {16'd0, ld_beat} * BUS_BYTES;
            cap_p <= 1'b1; cap_pslot <= ld_beat; cap_plast <= (ld_beat == ld_nb - 16'd1);
            if (ld_beat == ld_nb - 16'd1) begin
                ld_beat <= 16'd0;
                laddr <= laddr + {12'd0, ld_stride};
                ld_line <= ld_line + 16'd1;
                if (ld_line == ld_n - 16'd1 || ld_stride == 20'd0) ld_iss <= 1'b0;
            end else ld_beat <= ld_beat + 16'd1;
        end
        // write side: lbuf holds line `ld_wline` complete (its last beat landed last cycle); the next
        // line's first beat lands in lbuf at the end of this cycle, so the line is latched here.
        if (ld_wr_any) begin
            case (ld_buf)
                BUF_IN:  begin in_wen <= 1'b1; in_waddr <= ld_x[IN_AW-1:0] + ld_wline[IN_AW-1:0];
                               ld_wdata <= lbuf[IWB-1:0]; end
                BUF_W:   begin w_wen <= 1'b1; w_waddr <= ld_x[W_AW-1:0] + ld_wline[W_AW-1:0];
                               ld_wdata <= lbuf[IWB-1:0]; end
                BUF_VEC: begin vec_wen <= 1'b1; vec_waddr <= ld_x[VEC_AW-1:0] + ld_wline[VEC_AW-1:0];
                               vec_wdata <= lbuf[COLS*8-1:0]; end
                BUF_PAR: params <= lbuf[COLS*64-1:0];
                default: begin acc_wen <= 1'b1; acc_waddr <= ld_x[ACC_AW-1:0] + ld_wline[ACC_AW-1:0];
                               acc_wdata <= lbuf[COLS*32-1:0]; end
            endcase
            ld_wline <= ld_wline + 16'd1;
            if (ld_wline == ld_n - 16'd1) begin ld_busy <= 1'b0; ret_ld <= 1'b1; end
            else if (ld_stride == 20'd0) ld_rw <= 1'b1;
        end

        // ---- ST: scratchpad -> DRAM, a line read every st_nb cycles, one beat per cycle ----
        if (st_busy && st_rline != st_n) begin
            if (st_ph == 16'd0) begin
                if (st_buf == BUF_VEC) begin vec_ren <= 1'b1; vec_raddr_a <= st_x[VEC_AW-1:0] + st_rline[VEC_AW-1:0]; end
                else begin acc_ren <= 1'b1; acc_raddr <= st_x[ACC_AW-1:0] + st_rline[ACC_AW-1:0]; end
                st_p1 <= 1'b1;
                st_rline <= st_rline + 16'd1;
            end
            st_ph <= (st_ph == st_nb - 16'd1) ? 16'd0 : st_ph + 16'd1;
        end
        if (st_p2 || st_out) begin
            dram_wen <= 1'b1;
            dram_waddr <= st_laddr + {16'd0, st_p2 ? 16'd0 : st_obeat} * BUS_BYTES;
            dram_wdata <= st_p2 ? st_line[BUS_BYTES*8-1:0] : st_lbuf[st_obeat*BUS_BYTES*8 +: BUS_BYTES*8];
            dram_wstrb <= strb_of(st_len - (st_p2 ? 16'd0 : st_obeat) * BUS_BYTES[15:0]);
            if (st_p2) st_lbuf <= st_line;
            if ((st_p2 ? 16'd0 : st_obeat) == st_nb - 16'd1) begin
                st_out <= 1'b0;
                st_laddr <= st_laddr + {12'd0, st_stride};
                st_oline <= st_oline + 16'd1;
                if (st_oline == st_n - 16'd1) begin st_busy <= 1'b0; ret_st <= 1'b1; end
            end else begin
                st_out <= 1'b1;
                st_obeat <= st_p2 ? 16'd1 : st_obeat + 16'd1;
            end
        end

        // ---- EX: WS weight loader (the queued MATMUL's weights into the free bank) ----
        if (wl_act) begin
            if (wl_beat < ROWS16) begin w_ren <= 1'b1; w_raddr <= wl_line[W_AW-1:0]; end
            ws_load <= 1'b1; ws_lsel <= wl_bank;
            if (wl_beat == ROWS16) begin wl_act <= 1'b0; xn_wd <= 1'b1; lbank <= wl_bank; end
            wl_beat <= wl_beat + 16'd1;
        end else if (wl_go) begin
            w_ren <= 1'b1; w_raddr <= wl_line0[W_AW-1:0];
            wl_act <= 1'b1; wl_beat <= 16'd1; wl_bank <= !lbank; wl_y <= xn_y;
        end

        // ---- EX: the running instruction ----
        case (x_st)
            X_MM_STREAM: begin
                in_ren <= 1'b1; in_raddr <= x_in_line[IN_AW-1:0];
                if (DATAFLOW != 0) begin w_ren <= 1'b1; w_raddr <= x_w_line[W_AW-1:0]; end
                arr_pend <= 1'b1; sel_p <= cbank;
                if (x_line == xc_n - 16'd1) begin
                    x_beat <= 16'd0;
                    if (DATAFLOW == 0) begin ret_ex <= 1'b1; x_st <= X_IDLE; end
                    else x_st <= X_OS_FLUSH;
                end else x_line <= x_line + 16'd1;
            end
            X_OS_CLEAR: begin   // OS: zero the accumulators
                os_clear <= 1'b1;
                x_st <= (xc_n == 16'd0) ? X_OS_FLUSH : X_MM_STREAM;
            end
            X_OS_FLUSH: begin   // OS: the last operands reach PE(ROWS-1, COLS-1)
                if (x_beat == FLUSH) begin x_beat <= 16'd0; x_st <= X_OS_DRAIN; end
                else x_beat <= x_beat + 16'd1;
            end
            X_OS_DRAIN: begin   // OS: shift ROWS result rows out of the bottom
                os_shift <= 1'b1;
                if (x_beat == ROWS16 - 16'd1) x_st <= X_OS_WAIT;
                else x_beat <= x_beat + 16'd1;
            end
            X_OS_WAIT: if (wr_cnt == ROWS16) begin x_st <= X_IDLE; ret_ex <= 1'b1; end
            X_RQ: begin   // REQUANT: acc -> requant lanes -> vector scratchpad
                acc_ren <= 1'b1; acc_raddr <= xc_x[ACC_AW-1:0] + x_line[ACC_AW-1:0];
                x_line <= x_line + 16'd1;
                if (x_line == xc_n - 16'd1) x_st <= X_RQ_WAIT;
            end
            X_RQ_WAIT: if (rq_cnt == xc_n) begin x_st <= X_IDLE; ret_ex <= 1'b1; end
            X_VEC_READ: begin   // VECTOR: vec[z+i] = op(vec[x+i], vec[y+i])
                vec_ren <= 1'b1;
                vec_raddr_a <= xc_x[VEC_AW-1:0] + x_line[VEC_AW-1:0];
                vec_raddr_b <= xc_y[VEC_AW-1:0] + x_line[VEC_AW-1:0];
                x_beat <= 16'd0;
                x_st <= X_VEC_WAIT;
            end
            X_VEC_WAIT: x_st <= X_VEC_OP;
            X_VEC_OP: begin
                if (x_beat == VPASS - 16'd1) x_st <= X_VEC_WRITE;
                else x_beat <= x_beat + 16'd1;
            end
            X_VEC_WRITE: begin
                vec_wen <= 1'b1;
                vec_waddr <= xc_z[VEC_AW-1:0] + x_line[VEC_AW-1:0];
                vec_wdata <= vu_y;
                x_line <= x_line + 16'd1;
                if (x_line == xc_n - 16'd1) begin x_st <= X_IDLE; ret_ex <= 1'b1; end
                else x_st <= X_VEC_READ;
            end
            default: x_st <= X_IDLE;
        endcase
        if (promote) begin
            xn_v <= 1'b0;
            xc_op <= xn_op; xc_func <= xn_func; xc_x <= xn_x; xc_y <= xn_y; xc_z <= xn_z; xc_n <= xn_n;
            x_line <= 16'd0; x_beat <= 16'd0; out_cnt <= 16'd0; wr_cnt <= 16'd0; rq_cnt <= 16'd0;
            last_mm_v <= nxt_mm; last_z <= xn_z; last_n <= xn_n;
            cbank <= lbank;
            case (xn_op)
                OP_MATMUL: begin
                    if (DATAFLOW != 0) x_st <= X_OS_CLEAR;
                    else if (xn_n == 16'd0) begin x_st <= X_IDLE; ret_ex <= 1'b1; end
                    else x_st <= X_MM_STREAM;
                end
                OP_REQUANT: x_st <= X_RQ;
                default:    x_st <= X_VEC_READ;
            endcase
        end

        // REQUANT issue pipeline and write-back
        if (x_st == X_RQ) rq_pend <= 1'b1;
        if (rq_out_valid[0]) begin
            vec_wen <= 1'b1;
            vec_waddr <= xc_z[VEC_AW-1:0] + rq_cnt[VEC_AW-1:0];
            vec_wdata <= rq_y;
            rq_cnt <= rq_cnt + 16'd1;
        end

        retired <= retired + {31'd0, ret_fe} + {31'd0, ret_ld} + {31'd0, ret_st} + {31'd0, ret_ex} +
                   {31'd0, halt_now};

        if (rst) begin
            running <= 1'b0; halted <= 1'b0; error <= 1'b0; pc <= 16'd0; retired <= 32'd0; cycles <= 32'd0;
            fe_v <= 1'b0; ld_busy <= 1'b0; ld_iss <= 1'b0; st_busy <= 1'b0; st_out <= 1'b0;
            x_st <= X_IDLE; xn_v <= 1'b0; wl_act <= 1'b0; last_mm_v <= 1'b0; inflight <= 16'd0;
        end else if (!running && start) begin
            running <= 1'b1; halted <= 1'b0; error <= 1'b0; pc <= 16'd0; retired <= 32'd0; cycles <= 32'd0;
            fe_v <= 1'b0; ld_busy <= 1'b0; ld_iss <= 1'b0; st_busy <= 1'b0; st_out <= 1'b0;
            x_st <= X_IDLE; xn_v <= 1'b0; wl_act <= 1'b0; last_mm_v <= 1'b0;
        end
    end
endmodule
`default_nettype wire
