"""Talk to a running `qrgate sandbox` with public, widely used wallet client libraries
(not ours): wechatpy (WeChat Pay API v2) and python-alipay-sdk (Alipay OpenAPI).

    python3 -m venv /tmp/pyclients && /tmp/pyclients/bin/pip install wechatpy python-alipay-sdk
    cargo run -- sandbox --listen 127.0.0.1:8090 --secapi-listen 127.0.0.1:8091 &
    /tmp/pyclients/bin/python tools/interop/public_clients.py http://127.0.0.1:8090

Every step asserts what the wallet should answer; the script exits non-zero on the first
surprise. See docs/SANDBOX.md ("Public client libraries").
"""
import datetime
import io
import json
import os
import sys
import tempfile
import time
import urllib.request
import zipfile

from alipay import AliPay
from wechatpy.pay import WeChatPay
from wechatpy.exceptions import WeChatPayException

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8090"


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + "/control" + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def step(name):
    print(f"--- {name}")


def beijing_now():
    """The sandbox clock's time in Beijing (every wallet dates its bills in it)."""
    now = datetime.datetime.fromisoformat(control("GET", "/clock")["now"])
    return now.astimezone(datetime.timezone(datetime.timedelta(hours=8)))


creds = control("GET", "/credentials")
customer = control("POST", "/customers", {"name": "Li Lei", "balance_fen": 100000})["id"]


def code(wallet, kind="instant", **extra):
    return control("POST", "/codes", {"customer_id": customer, "wallet": wallet,
                                      "behaviour": dict(kind=kind, **extra)})["code"]


def balance():
    return control("GET", f"/customers/{customer}")["balance_fen"]


# --- WeChat Pay v2 with wechatpy -------------------------------------------------------
w = creds["wechat"]
tmp = tempfile.mkdtemp()
for name in ("client_cert_pem", "client_key_pem", "ca_cert_pem"):
    with open(os.path.join(tmp, name), "w") as f:
        f.write(w[name])
# requests verifies the sandbox's TLS certificate with its CA.
os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(tmp, "ca_cert_pem")


class SandboxWeChatPay(WeChatPay):
    # Every WeChat path is served on the TLS listener, /secapi/ included.
    API_BASE_URL = w["secapi_base_url"].rstrip("/") + "/"


pay = SandboxWeChatPay(appid=w["appid"], api_key=w["api_key"], mch_id=w["mch_id"],
                       sub_mch_id=w.get("sub_mch_id"),
                       mch_cert=os.path.join(tmp, "client_cert_pem"),
                       mch_key=os.path.join(tmp, "client_key_pem"), timeout=10)

step("wechatpy micropay, instant")
before = balance()
out_trade_no = f"WX{int(time.time() * 1000)}"
r = pay.micropay.create(body="Maple Tea", total_fee=1234, auth_code=code("wechat"),
                        client_ip="127.0.0.1", out_trade_no=out_trade_no)
assert r["result_code"] == "SUCCESS" and r["total_fee"] == "1234", r
assert balance() == before - 1234
print("paid, transaction_id", r["transaction_id"])
wechat_bill_day = beijing_now().date()

step("wechatpy orderquery")
q = pay.order.query(out_trade_no=out_trade_no)
assert q["trade_state"] == "SUCCESS", q

step("wechatpy refund (secapi, client certificate) and refundquery")
rf = pay.refund.apply(total_fee=1234, refund_fee=234, out_refund_no=out_trade_no + "R1",
                      out_trade_no=out_trade_no)
assert rf["result_code"] == "SUCCESS", rf
control("POST", "/clock/advance", {"seconds": 5})
rq = pay.refund.query(out_refund_no=out_trade_no + "R1")
assert rq["refund_status_0"] == "SUCCESS", rq
assert balance() == before - 1000

step("wechatpy micropay, password pending, then reverse")
pending_no = f"WX{int(time.time() * 1000)}P"
try:
    pay.micropay.create(body="Maple Tea", total_fee=500, auth_code=code("wechat", "never_confirm"),
                        client_ip="127.0.0.1", out_trade_no=pending_no)
    raise AssertionError("USERPAYING should raise")
except WeChatPayException as e:
    assert e.errcode == "USERPAYING", e
rv = pay.order.reverse(out_trade_no=pending_no)
assert rv["result_code"] == "SUCCESS" and rv["recall"] == "N", rv
assert pay.order.query(out_trade_no=pending_no)["trade_state"] == "REVOKED"
assert balance() == before - 1000

step("wechatpy unifiedorder NATIVE, then close after 5 minutes")
native_no = f"WX{int(time.time() * 1000)}N"
u = pay.order.create(trade_type="NATIVE", body="Maple Tea", total_fee=990,
                     notify_url="http://127.0.0.1:9/notify", product_id=native_no,
                     out_trade_no=native_no, client_ip="127.0.0.1")
assert u["code_url"].startswith(BASE + "/pay/"), u
control("POST", "/clock/advance", {"seconds": 301})
pay.order.close(out_trade_no=native_no)
assert pay.order.query(out_trade_no=native_no)["trade_state"] == "CLOSED"
print("wechatpy: all steps passed")

# --- Alipay OpenAPI with python-alipay-sdk ----------------------------------------------
a = creds["alipay"]
ali = AliPay(appid=a["app_id"], app_private_key_string=a["app_private_key_pem"],
             alipay_public_key_string=a["alipay_public_key_pem"], sign_type="RSA2")
ali._gateway = a["gateway_url"]  # the SDK has no public setting for a custom gateway

step("python-alipay-sdk trade.pay, instant (the SDK verifies the response signature)")
before = balance()
ali_no = f"AL{int(time.time() * 1000)}"
p = ali.api_alipay_trade_pay(out_trade_no=ali_no, scene="bar_code", auth_code=code("alipay"),
                             subject="Maple Tea", total_amount="12.34")
assert p["code"] == "10000", p
assert balance() == before - 1234
alipay_bill_day = beijing_now().date()

step("python-alipay-sdk trade.query, refund, fastpay.refund.query")
assert ali.api_alipay_trade_query(out_trade_no=ali_no)["trade_status"] == "TRADE_SUCCESS"
rf = ali.api_alipay_trade_refund(out_trade_no=ali_no, refund_amount="2.34", out_request_no=ali_no + "R1")
assert rf["code"] == "10000" and rf["fund_change"] == "Y", rf
rq = ali.api_alipay_trade_fastpay_refund_query(out_request_no=ali_no + "R1", out_trade_no=ali_no)
assert rq["code"] == "10000" and rq["refund_amount"] == "2.34", rq
assert balance() == before - 1000

step("python-alipay-sdk trade.pay waiting for the buyer, then cancel")
wait_no = f"AL{int(time.time() * 1000)}W"
p = ali.api_alipay_trade_pay(out_trade_no=wait_no, scene="bar_code",
                             auth_code=code("alipay", "never_confirm"), subject="Maple Tea",
                             total_amount="5.00")
assert p["code"] == "10003", p
c = ali.api_alipay_trade_cancel(out_trade_no=wait_no)
assert c["code"] == "10000" and c["retry_flag"] == "N" and c["action"] == "close", c

step("python-alipay-sdk trade.precreate: invisible to query until scanned")
pre_no = f"AL{int(time.time() * 1000)}Q"
pc = ali.api_alipay_trade_precreate(out_trade_no=pre_no, subject="Maple Tea", total_amount="9.90")
assert pc["code"] == "10000" and pc["qr_code"].startswith(BASE + "/pay/"), pc
assert ali.api_alipay_trade_query(out_trade_no=pre_no)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
control("POST", "/qr/pay", {"code_url": pc["qr_code"], "customer_id": customer})
assert ali.api_alipay_trade_query(out_trade_no=pre_no)["trade_status"] == "TRADE_SUCCESS"
print("python-alipay-sdk: all steps passed")

# --- Daily bills: both libraries download the sandbox's bill of the day above -------------
# A day's bill exists from 09:00 Beijing the next day: move the sandbox clock there.
now = beijing_now()
ready = datetime.datetime.combine(max(wechat_bill_day, alipay_bill_day) + datetime.timedelta(days=1),
                                  datetime.time(9, 0, 30), tzinfo=now.tzinfo)
control("POST", "/clock/advance", {"seconds": max(0, int((ready - now).total_seconds()) + 1)})

step("wechatpy tools.download_bill (ALL), rows as the library returns them")
text = pay.tools.download_bill(wechat_bill_day.strftime("%Y%m%d"))
assert isinstance(text, str) and not text.startswith("<"), text
lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
print("header:", lines[0])
rows = [line[1:].split(",`") for line in lines[1:-2]]
for values in rows:
    print("wechat bill row:", values)
print("summary:", lines[-2], "/", lines[-1])
assert any(v[6] == out_trade_no and v[9] == "SUCCESS" and v[12] == "12.34" for v in rows), rows
assert any(v[6] == out_trade_no and v[9] == "REFUND" and v[16] == "2.34" for v in rows), rows
try:
    pay.tools.download_bill("20000101")
    raise AssertionError("a day without trades should have no bill")
except WeChatPayException as e:
    assert e.return_msg == "No Bill Exist", e

step("python-alipay-sdk server_api(bill.downloadurl.query), then GET the URL and unzip")
answer = ali.server_api("alipay.data.dataservice.bill.downloadurl.query",
                        biz_content={"bill_type": "trade", "bill_date": alipay_bill_day.isoformat()})
url = answer["bill_download_url"]
print("bill_download_url:", url)
with urllib.request.urlopen(url) as r:
    archive = zipfile.ZipFile(io.BytesIO(r.read()))
files = {}
for info in archive.infolist():
    # No UTF-8 flag: Python reads the name as cp437; the bytes are GBK.
    name = info.filename.encode("cp437").decode("gbk")
    files[name] = archive.read(info).decode("gbk")
print("files:", sorted(files))
detail = next(text for name, text in files.items() if name.endswith("_业务明细.csv"))
summary = next(text for name, text in files.items() if name.endswith("_业务明细(汇总).csv"))
lines = [line for line in detail.splitlines() if line and not line.startswith("#")]
print("header:", lines[0])
rows = [[cell.strip() for cell in line.split(",")] for line in lines[1:]]
for cells in rows:
    print("alipay bill row:", cells)
for line in detail.splitlines():
    if line.startswith("#") and "合计" in line:
        print("footer:", line)
print("summary:", [line for line in summary.splitlines() if line.startswith("合计")])
assert any(c[1] == ali_no and c[2] == "交易" and c[11] == "12.34" for c in rows), rows
assert any(c[1] == ali_no and c[2] == "退款" and c[11] == "-2.34" and c[21] == ali_no + "R1"
           for c in rows), rows
print("bills: both libraries downloaded and read the sandbox's bills")
