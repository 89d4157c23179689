"""Fixed reference tables of the demo world: segments, stages, cities, names, products, campaigns.

Per-segment parameters are arrays indexed by segment code (the position in `SEGMENTS`), so the
generator can look them up for a whole chunk of people at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = (
    "vip_loyal",
    "business_bulk",
    "young_digital",
    "complaint_prone_price_seekers",
    "family_planners",
    "occasional_gifters",
)
VIP, BUSINESS, YOUNG, COMPLAINT, FAMILY, GIFTER = range(len(SEGMENTS))
SEGMENT_SHARES = np.array([0.08, 0.07, 0.25, 0.15, 0.25, 0.20])

STAGES = ("contact", "acquisition", "conversion", "retention", "loyalty", "at_risk", "churned")
CONTACT, ACQUISITION, CONVERSION, RETENTION, LOYALTY, AT_RISK, CHURNED = range(len(STAGES))
STAGE_SHARES = np.array([0.07, 0.08, 0.10, 0.35, 0.17, 0.12, 0.11])
# Probability of buying at least once in the 90 days after the reference date.
FUTURE_PURCHASE_P = np.array([0.03, 0.12, 0.60, 0.85, 0.93, 0.25, 0.04])

DATA_START = np.datetime64("2023-01-01", "D")

# (city, province, tier, area code, relative population)
CITIES = pd.DataFrame(
    [
        ("北京", "北京", 1, "010", 22),
        ("上海", "上海", 1, "021", 25),
        ("广州", "广东", 1, "020", 19),
        ("深圳", "广东", 1, "0755", 18),
        ("成都", "四川", 2, "028", 21),
        ("杭州", "浙江", 2, "0571", 12),
        ("重庆", "重庆", 2, "023", 20),
        ("武汉", "湖北", 2, "027", 13),
        ("西安", "陕西", 2, "029", 13),
        ("苏州", "江苏", 2, "0512", 13),
        ("南京", "江苏", 2, "025", 9),
        ("天津", "天津", 2, "022", 14),
        ("长沙", "湖南", 2, "0731", 10),
        ("郑州", "河南", 2, "0371", 13),
        ("东莞", "广东", 2, "0769", 10),
        ("青岛", "山东", 2, "0532", 10),
        ("沈阳", "辽宁", 2, "024", 9),
        ("宁波", "浙江", 2, "0574", 9),
        ("合肥", "安徽", 2, "0551", 9),
        ("厦门", "福建", 3, "0592", 5),
        ("福州", "福建", 3, "0591", 8),
        ("济南", "山东", 3, "0531", 9),
        ("昆明", "云南", 3, "0871", 8),
        ("南宁", "广西", 3, "0771", 8),
        ("洛阳", "河南", 3, "0379", 7),
        ("绵阳", "四川", 3, "0816", 5),
        ("桂林", "广西", 4, "0773", 5),
        ("赣州", "江西", 4, "0797", 9),
        ("延安", "陕西", 4, "0911", 2),
        ("黄山", "安徽", 4, "0559", 1),
    ],
    columns=["city", "province", "tier", "area_code", "population"],
)
# Share of each segment living in city tiers 1-4.
TIER_WEIGHTS = np.array(
    [
        [0.75, 0.20, 0.04, 0.01],
        [0.40, 0.45, 0.10, 0.05],
        [0.30, 0.45, 0.17, 0.08],
        [0.15, 0.40, 0.30, 0.15],
        [0.20, 0.45, 0.25, 0.10],
        [0.25, 0.40, 0.25, 0.10],
    ]
)


def city_probabilities() -> np.ndarray:
    """P(city | segment): tier share of the segment spread over the tier's cities by population."""
    tiers = CITIES["tier"].to_numpy() - 1
    population = CITIES["population"].to_numpy(dtype=float)
    tier_population = np.bincount(tiers, weights=population)
    within_tier = population / tier_population[tiers]
    return TIER_WEIGHTS[:, tiers] * within_tier[None, :]


SURNAMES = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
    ("许", "xu"),
    ("韩", "han"),
    ("冯", "feng"),
    ("邓", "deng"),
    ("曹", "cao"),
]
# Roughly the real frequency ranking: the first surnames are far more common.
SURNAME_WEIGHTS = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.8
GIVEN_MALE = [
    ("伟", "wei"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("刚", "gang"),
    ("平", "ping"),
    ("辉", "hui"),
    ("鹏", "peng"),
    ("华", "hua"),
    ("飞", "fei"),
    ("鑫", "xin"),
    ("波", "bo"),
    ("斌", "bin"),
    ("宇", "yu"),
    ("浩", "hao"),
    ("凯", "kai"),
    ("健", "jian"),
    ("俊", "jun"),
    ("帆", "fan"),
    ("晨", "chen"),
    ("志", "zhi"),
    ("建", "jian"),
    ("国", "guo"),
    ("文", "wen"),
]
GIVEN_FEMALE = [
    ("芳", "fang"),
    ("娜", "na"),
    ("静", "jing"),
    ("敏", "min"),
    ("丽", "li"),
    ("艳", "yan"),
    ("娟", "juan"),
    ("霞", "xia"),
    ("秀", "xiu"),
    ("燕", "yan"),
    ("玲", "ling"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("慧", "hui"),
    ("莉", "li"),
    ("颖", "ying"),
    ("琳", "lin"),
    ("欣", "xin"),
    ("怡", "yi"),
    ("梅", "mei"),
    ("红", "hong"),
    ("佳", "jia"),
    ("倩", "qian"),
    ("璐", "lu"),
    ("萍", "ping"),
    ("晶", "jing"),
    ("悦", "yue"),
    ("雯", "wen"),
    ("琴", "qin"),
    ("兰", "lan"),
]
# Given-name characters: males use the first block, females the second.
GIVEN = GIVEN_MALE + GIVEN_FEMALE
N_GIVEN_MALE = len(GIVEN_MALE)
# Very common full names shared by many distinct people: (surname index, given index, gender).
NAMESAKES = [
    (0, 0, "M"),
    (1, 31, "F"),
    (2, 0, "M"),
    (3, 4, "M"),
    (0, 30, "F"),
    (1, 32, "F"),
    (2, 33, "F"),
    (0, 32, "F"),
    (1, 1, "M"),
    (2, 32, "F"),
    (3, 0, "M"),
    (0, 2, "M"),
]

LATIN_FIRST_MALE = [
    "Jonathan",
    "Michael",
    "David",
    "James",
    "Robert",
    "Daniel",
    "Thomas",
    "Christopher",
    "Matthew",
    "Andrew",
    "Carlos",
    "Juan",
    "Luis",
    "Miguel",
    "Pedro",
]
LATIN_FIRST_FEMALE = [
    "Sarah",
    "Emily",
    "Jessica",
    "Laura",
    "Anna",
    "Maria",
    "Sophie",
    "Julia",
    "Catherine",
    "Elizabeth",
    "Ana",
    "Lucia",
    "Sofia",
    "Elena",
    "Isabel",
]
LATIN_LAST = [
    "Smith",
    "Johnson",
    "Brown",
    "Miller",
    "Garcia",
    "Martinez",
    "Rodriguez",
    "Lopez",
    "Gonzalez",
    "Fernandez",
    "Silva",
    "Santos",
    "Muller",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Wilson",
    "Taylor",
    "Anderson",
    "Moore",
]

EMAIL_DOMAINS = np.array(
    ["qq.com", "163.com", "126.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com"]
)
PLACEHOLDER_PHONES = np.array(["13800000000", "00000000000", "13800138000"])
PLACEHOLDER_EMAILS = np.array(["test@test.com", "none@none.com", "noemail@qq.com"])

ROADS = np.array(
    [
        "人民路",
        "解放路",
        "中山路",
        "建设路",
        "和平路",
        "新华路",
        "长江路",
        "南京路",
        "朝阳路",
        "青年路",
        "文化路",
        "胜利路",
        "东风路",
        "光明路",
        "花园路",
        "滨江路",
        "学府路",
        "科技路",
        "工业路",
        "天府大道",
    ]
)
COMPANY_WORDS = np.array(
    [
        "华信",
        "金鼎",
        "鸿达",
        "天成",
        "瑞丰",
        "恒通",
        "博远",
        "宏图",
        "中科",
        "东方",
        "新锐",
        "盛世",
        "汇智",
        "龙腾",
        "卓越",
        "众诚",
        "安达",
        "万和",
        "星辰",
        "合力",
    ]
)
INDUSTRIES = np.array(
    [
        "manufacturing",
        "retail",
        "it_services",
        "logistics",
        "construction",
        "education",
        "healthcare",
        "finance",
        "hospitality",
        "professional_services",
    ]
)
COMPANY_SUFFIX = {
    "manufacturing": "制造",
    "retail": "商贸",
    "it_services": "科技",
    "logistics": "物流",
    "construction": "建设",
    "education": "教育",
    "healthcare": "医疗",
    "finance": "投资",
    "hospitality": "酒店管理",
    "professional_services": "咨询",
}

CATEGORIES = np.array(
    [
        "electronics",
        "luxury",
        "office_supplies",
        "office_equipment",
        "fashion",
        "beauty",
        "snacks",
        "groceries",
        "home",
        "baby",
        "gifts",
        "jewelry",
        "sports",
        "books",
    ]
)
# P(category | segment), columns in CATEGORIES order.
CATEGORY_WEIGHTS = np.array(
    [
        [0.40, 0.30, 0.00, 0.00, 0.08, 0.05, 0.00, 0.02, 0.05, 0.00, 0.03, 0.05, 0.01, 0.01],
        [0.12, 0.00, 0.45, 0.38, 0.00, 0.00, 0.02, 0.00, 0.02, 0.00, 0.00, 0.00, 0.00, 0.01],
        [0.08, 0.00, 0.00, 0.00, 0.34, 0.24, 0.22, 0.02, 0.02, 0.00, 0.02, 0.00, 0.05, 0.01],
        [0.15, 0.00, 0.02, 0.00, 0.20, 0.10, 0.10, 0.15, 0.15, 0.03, 0.02, 0.00, 0.05, 0.03],
        [0.04, 0.00, 0.01, 0.00, 0.05, 0.03, 0.08, 0.35, 0.22, 0.18, 0.01, 0.00, 0.02, 0.01],
        [0.05, 0.08, 0.00, 0.00, 0.05, 0.12, 0.02, 0.00, 0.02, 0.00, 0.36, 0.28, 0.00, 0.02],
    ]
)
CHANNELS = np.array(["store", "online", "app", "phone"])
CHANNEL_WEIGHTS = np.array(
    [
        [0.50, 0.12, 0.05, 0.33],
        [0.35, 0.20, 0.00, 0.45],
        [0.05, 0.33, 0.62, 0.00],
        [0.25, 0.45, 0.25, 0.05],
        [0.50, 0.30, 0.18, 0.02],
        [0.42, 0.38, 0.18, 0.02],
    ]
)
# Order value: log-normal median (CNY) and sigma; quantity range per order.
ORDER_MEDIAN = np.array([2200.0, 2600.0, 110.0, 260.0, 300.0, 850.0])
ORDER_SIGMA = np.array([0.25, 0.45, 0.55, 0.50, 0.40, 0.50])
QUANTITY_LOW = np.array([1, 20, 1, 1, 2, 1])
QUANTITY_HIGH = np.array([3, 300, 3, 4, 10, 2])
REFUND_RATE = np.array([0.02, 0.03, 0.05, 0.16, 0.03, 0.04])
# Mean days between purchases.
INTERPURCHASE_DAYS = np.array([40.0, 30.0, 20.0, 40.0, 30.0, 110.0])
# Hours of the day purchases happen: (start, end) and weekday/weekend habit
# 0 = any day, 1 = weekdays only, 2 = mostly weekends.
HOUR_RANGE = np.array([[10, 20], [9, 17], [19, 24], [9, 23], [9, 20], [10, 22]])
DAY_HABIT = np.array([0, 1, 2, 0, 2, 0])

AGE_RANGE = np.array([[40, 60], [28, 55], [18, 30], [25, 65], [30, 45], [22, 60]])
LATIN_SHARE = np.array([0.10, 0.06, 0.05, 0.03, 0.03, 0.05])
MALE_SHARE = np.array([0.55, 0.65, 0.45, 0.50, 0.40, 0.50])

# Share of people with a record in each system.
CRM_SHARE = np.array([0.85, 0.97, 0.45, 0.75, 0.75, 0.65])
SHOP_SHARE = np.array([0.40, 0.20, 0.95, 0.65, 0.65, 0.60])
LOYALTY_SHARE = np.array([0.92, 0.10, 0.25, 0.35, 0.50, 0.35])
CTI_SHARE = np.array([0.65, 0.92, 0.18, 0.95, 0.60, 0.20])
# Calls per person who has a CTI record, over a year of activity.
CALL_RATE = np.array([5.0, 9.0, 1.0, 12.0, 5.0, 1.0])
CALL_REASONS = np.array(["inquiry", "complaint", "after_sales", "sales"])
COMPLAINT_REASON = 1
CALL_REASON_WEIGHTS = np.array(
    [
        [0.40, 0.06, 0.34, 0.20],
        [0.25, 0.07, 0.58, 0.10],
        [0.55, 0.15, 0.20, 0.10],
        [0.12, 0.68, 0.16, 0.04],
        [0.62, 0.08, 0.20, 0.10],
        [0.55, 0.12, 0.18, 0.15],
    ]
)
CALL_DURATION_MEDIAN = np.array([180.0, 420.0, 360.0, 150.0])
RESOLVED_P = np.array([0.90, 0.82, 0.85, 0.55, 0.85, 0.80])
SATISFACTION_MEAN = np.array([4.6, 4.0, 3.9, 2.2, 4.1, 3.9])
CSAT_MEAN = np.array([4.7, 4.0, 3.8, 2.1, 4.1, 3.9])

SURVEY_RATE = np.array([0.9, 0.6, 0.5, 1.1, 0.6, 0.3])
INTERESTS = [
    ["travel", "golf", "wine", "luxury_brands", "investment", "art"],
    ["business_news", "productivity", "office_tech", "logistics", "management"],
    ["gaming", "fashion", "k_pop", "live_streaming", "anime", "fitness", "beauty"],
    ["coupons", "deals", "cooking", "tv_series", "fashion"],
    ["parenting", "cooking", "home_decor", "education", "outdoor"],
    ["gifts", "jewelry", "romance", "festivals", "photography"],
]
LIFESTYLES = [
    ["premium", "business_traveller", "connoisseur"],
    ["business_owner", "office_manager"],
    ["digital_native", "trend_follower", "student"],
    ["budget_conscious", "bargain_hunter"],
    ["family_oriented", "home_maker"],
    ["occasional_shopper", "romantic"],
]
NEEDS = [
    ["exclusive_service", "priority_delivery", "premium_products"],
    ["bulk_pricing", "invoicing", "account_manager", "fast_delivery"],
    ["new_arrivals", "app_features", "fast_delivery", "social_sharing"],
    ["lower_prices", "better_service", "easy_returns", "discounts"],
    ["family_packs", "weekend_delivery", "kids_products", "membership_savings"],
    ["gift_wrapping", "gift_ideas", "reminders"],
]

MARKETING_RATE = np.array([2.5, 2.0, 3.5, 3.0, 2.5, 1.5])
MARKETING_CHANNELS = np.array(["email", "sms", "phone", "social"])
MARKETING_CHANNEL_WEIGHTS = np.array(
    [
        [0.35, 0.20, 0.35, 0.10],
        [0.55, 0.10, 0.30, 0.05],
        [0.10, 0.35, 0.05, 0.50],
        [0.30, 0.45, 0.10, 0.15],
        [0.35, 0.35, 0.10, 0.20],
        [0.40, 0.30, 0.05, 0.25],
    ]
)
# P(respond | segment, channel) for a campaign of the segment's kind; other campaigns get a third.
RESPONSE_P = np.array(
    [
        [0.25, 0.15, 0.45, 0.10],
        [0.30, 0.05, 0.40, 0.02],
        [0.05, 0.35, 0.05, 0.45],
        [0.25, 0.40, 0.15, 0.20],
        [0.25, 0.25, 0.15, 0.20],
        [0.15, 0.15, 0.05, 0.15],
    ]
)
CONVERSION_P = np.array([0.35, 0.30, 0.20, 0.25, 0.25, 0.30])
CAMPAIGN_KINDS = ("vip", "b2b", "app", "discount", "family", "festival")  # the kind each segment likes

DEVICES = np.array(["ios", "android", "pc", "mac"])
DEVICE_WEIGHTS = np.array(
    [
        [0.55, 0.15, 0.10, 0.20],
        [0.15, 0.15, 0.60, 0.10],
        [0.50, 0.45, 0.03, 0.02],
        [0.25, 0.55, 0.15, 0.05],
        [0.35, 0.45, 0.15, 0.05],
        [0.35, 0.40, 0.20, 0.05],
    ]
)
APP_P = np.array([0.40, 0.10, 0.95, 0.55, 0.60, 0.30])
SESSIONS_MEAN = np.array([8.0, 10.0, 45.0, 20.0, 15.0, 5.0])
MINUTES_PER_SESSION = np.array([12.0, 15.0, 20.0, 14.0, 12.0, 10.0])

# Festivals gifters buy for (month, day); Spring Festival moves every year.
FESTIVAL_DAYS = [(2, 14), (5, 20), (11, 11), (12, 24)]
SPRING_FESTIVALS = ["2023-01-22", "2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06"]


def festival_dates() -> np.ndarray:
    """Sorted festival dates (datetime64[D]) from 2022 to 2027."""
    fixed = [np.datetime64(f"{y}-{m:02d}-{d:02d}", "D") for y in range(2022, 2028) for m, d in FESTIVAL_DAYS]
    spring = [np.datetime64(day, "D") for day in SPRING_FESTIVALS]
    return np.sort(np.array(fixed + spring, dtype="datetime64[D]"))


def campaigns(reference_date: np.datetime64) -> pd.DataFrame:
    """Campaign calendar up to the reference date: name, kind (the segment it targets), start day."""
    rows = []
    for year in range(2023, 2028):
        rows += [
            (f"spring_festival_{year}", "festival", f"{year}-01-10"),
            (f"valentine_{year}", "festival", f"{year}-02-01"),
            (f"double11_{year}", "festival", f"{year}-11-01"),
            (f"vip_preview_{year}", "vip", f"{year}-04-15"),
            (f"vip_gala_{year}", "vip", f"{year}-10-01"),
            (f"b2b_bulk_{year}h1", "b2b", f"{year}-03-01"),
            (f"b2b_bulk_{year}h2", "b2b", f"{year}-09-01"),
            (f"app_push_{year}", "app", f"{year}-06-01"),
            (f"social_livestream_{year}", "app", f"{year}-08-15"),
            (f"family_weekend_{year}", "family", f"{year}-05-01"),
            (f"back_to_school_{year}", "family", f"{year}-08-20"),
        ]
        rows += [
            (f"discount_coupon_{year}q{q}", "discount", f"{year}-{3 * q - 2:02d}-05") for q in range(1, 5)
        ]
        rows += [(f"618_sale_{year}", "discount", f"{year}-06-05")]
    frame = pd.DataFrame(rows, columns=["campaign", "kind", "start"])
    frame["start"] = frame["start"].astype("datetime64[s]").to_numpy().astype("datetime64[D]")
    frame = frame[frame["start"] < reference_date].sort_values("start").reset_index(drop=True)
    frame["kind_code"] = frame["kind"].map({kind: code for code, kind in enumerate(CAMPAIGN_KINDS)})
    return frame
